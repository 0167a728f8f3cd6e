"""mailgosend: a self-hosted, all-in-one mail server on Twisted."""

__version__ = "0.1.0"
