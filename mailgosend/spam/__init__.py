"""Spam scoring: header/body heuristics, mail-authentication results and
DNSBL listings add up to a score; at SPAM_THRESHOLD or above mail is filed in
the Junk folder (DESIGN.md §6).  The per-user Bayesian classifier and
greylisting come with the outbound-delivery work and are not here yet."""
