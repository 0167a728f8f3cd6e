"""mailgosend.db"""
