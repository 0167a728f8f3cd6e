"""Spam scoring: header/body heuristics, mail-authentication results and
DNSBL listings add up to a score; at SPAM_THRESHOLD or above mail is filed in
the Junk folder (DESIGN.md §6).

bayes.py is the per-user Bayesian classifier (hashed tokens per user, trained
when a user moves mail into or out of Junk over IMAP).  Its score is not yet
added at delivery time, and greylisting is not built: both come with the
outbound-delivery work.
"""
