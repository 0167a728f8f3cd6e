"""IMAP4rev1 (RFC 3501) and IMAP4rev2 (RFC 9051) server over the encrypted mailboxes.

Built on ``twisted.mail.imap4.IMAP4Server`` (states, timeouts, line output) with its own
framing, parser and command handlers, because the stock ones break with real clients (see
server.py and ../shared/research/library-notes.md §2).

Implemented and advertised: IMAP4rev1 (RFC 3501), STARTTLS/LOGINDISABLED, AUTH=PLAIN
(RFC 4616) with SASL-IR (RFC 4959), LITERAL+ (RFC 7888), ID (RFC 2971), ENABLE (RFC 5161),
IDLE (RFC 2177), NAMESPACE (RFC 2342), UIDPLUS (RFC 4315), MOVE (RFC 6851), UNSELECT
(RFC 3691), CHILDREN (RFC 3348), SPECIAL-USE and CREATE-SPECIAL-USE (RFC 6154), QUOTA with
the STORAGE resource (RFC 9208), CONDSTORE (RFC 7162 §3.1: MODSEQ, HIGHESTMODSEQ,
CHANGEDSINCE, UNCHANGEDSINCE/MODIFIED, SEARCH MODSEQ, STATUS HIGHESTMODSEQ).
STATUS=SIZE (RFC 8438, from the stored sizes).
APPENDLIMIT (RFC 7889: the listener's message size limit, STATUS APPENDLIMIT, TOOBIG).
LIST-EXTENDED (RFC 5258, CHILDINFO, \\NonExistent subscriptions) and LIST-STATUS (RFC 5819).
MULTIAPPEND (RFC 3502: all or none, APPENDUID with a UID set).
BINARY (RFC 3516: FETCH BINARY[.PEEK/.SIZE] decoding base64/quoted-printable, literal8 APPEND).
UTF8=ACCEPT (RFC 6855: UTF-8 mailbox names and APPEND UTF8 after ENABLE; no SEARCH CHARSET).
COMPRESS=DEFLATE (RFC 4978, after login; a sync flush ends every burst of responses).
ESEARCH (RFC 4731: SEARCH RETURN MIN/MAX/ALL/COUNT) and SEARCHRES (RFC 5182: SAVE, "$").
SORT (RFC 5256) with SORT=DISPLAY (RFC 5957) and ESORT (RFC 5267 §3; not CONTEXT=SORT).
THREAD=ORDEREDSUBJECT and THREAD=REFERENCES (RFC 5256 §3).
QRESYNC (RFC 7162 §3.2: ENABLE QRESYNC, SELECT/EXAMINE (QRESYNC ...), VANISHED, CLOSED).
IMAP4rev2 (RFC 9051) beside IMAP4rev1: rev2 semantics per session after ENABLE IMAP4rev2
(ESEARCH for every SEARCH, no \\Recent, LIST in SELECT, UTF-8 names, HASCHILDREN, STATUS
DELETED; rev2.py); sessions that do not enable it keep rev1 behaviour.

Not implemented (and not advertised): CONTEXT=SEARCH/SORT, SETQUOTA (quotas are the
administrator's), \\Recent shared across nodes (see hub.py).

Entry point: :func:`mailgosend.imap.factory.build_imap_factory`.
"""

from mailgosend.imap.factory import IMAPServerFactory, build_imap_factory
from mailgosend.imap.interfaces import IIMAPAccount, ISpamTrainer, MessageRef

__all__ = ["IIMAPAccount", "IMAPServerFactory", "ISpamTrainer", "MessageRef",
           "build_imap_factory"]
