"""mailgosend.store"""
