"""CalDAV and CardDAV (issue #15): a generic WebDAV core (webdav.py, xmlutil.py) apart from
the calendar and contact specifics (caldav.py, carddav.py with ical.py and vcard.py), over
the storage of mail/dav.py; resource.py is the twisted.web front door (paths, Basic auth)."""
