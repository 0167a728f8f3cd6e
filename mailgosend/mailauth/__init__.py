"""mailgosend.mailauth"""
