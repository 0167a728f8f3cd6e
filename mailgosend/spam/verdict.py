"""The spam verdict and the headers that show it to the user and the admin."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from mailgosend.spam.rules import Hit


@dataclass(frozen=True)
class SpamVerdict:
    score: float
    hits: tuple[Hit, ...]
    threshold: float
    forced: str = ""      # a policy decision (DMARC quarantine) that files it as spam anyway

    @property
    def is_spam(self) -> bool:
        return bool(self.forced) or self.score >= self.threshold

    def plus(self, hits: Sequence[Hit]) -> "SpamVerdict":
        """The verdict with more hits (a recipient's Bayes points), same threshold and policy."""
        return combine(self.hits + tuple(hits), self.threshold, self.forced)

    def headers(self) -> list[tuple[str, str]]:
        """``X-Spam-Score`` and ``X-Spam-Report`` (rule names and points, no content)."""
        report = ", ".join(f"{h.name}={h.points:g}" for h in self.hits) or "none"
        if self.forced:
            report += f"; forced: {self.forced}"
        flag = "yes" if self.is_spam else "no"
        return [("X-Spam-Flag", flag.upper()),
                ("X-Spam-Score", f"{self.score:.1f}"),
                ("X-Spam-Report", f"score={self.score:.1f} required={self.threshold:g} "
                                  f"tests={report}")]


def combine(hits: Sequence[Hit], threshold: float, forced: str = "") -> SpamVerdict:
    return SpamVerdict(round(sum(h.points for h in hits), 2), tuple(hits), threshold, forced)
