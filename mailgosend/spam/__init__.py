"""Spam scoring: header/body heuristics, mail-authentication results and
DNSBL listings add up to a message's shared score; each local recipient's
Bayesian classifier adds its own bounded points; at SPAM_THRESHOLD or above
that recipient's copy is filed in the Junk folder (DESIGN.md §6).

rules.py is the table of heuristics, verdict.py the verdict and its headers,
bayes.py the per-user classifier (hashed tokens per user, trained when a user
moves mail into or out of Junk over IMAP), greylist.py RFC 6647 greylisting
on the inbound listener.
"""
