"""mailgosend.smtp"""
