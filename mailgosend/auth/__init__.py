"""mailgosend.auth"""
