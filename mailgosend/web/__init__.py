"""mailgosend.web"""
