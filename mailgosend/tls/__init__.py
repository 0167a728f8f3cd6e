"""mailgosend.tls"""
