"""Exact BM25 top-k over impact-ordered postings: the arithmetic that lets a search stop.

The full-text index (migration 0020) holds one posting per (chunk row, word) with the
word's ``tf``, the row's length ``dl`` (its distinct words) and an ``impact``: the
word's BM25 weight at a *reference* mean length (:data:`REFERENCE_DL`), by which each
word's postings are read in descending order. Per repository it holds the term
statistics: rows, their total length, and each word's document frequency.

BM25 over the repositories a search reads (k1 1.2, b 0.75)::

    score(d) = sum over the query's words t held by d of  idf(t) * weight(tf, dl, avgdl)
    idf(t) = ln(1 + (N - df + 0.5) / (df + 0.5))

with N, df and avgdl summed over those repositories' stored rows: every file version
a snapshot still holds, and those a job in progress has written but not yet published
(a re-index shifts the scores of the published snapshot a little while it runs). A
row's weight at the real mean length A is at most its impact times
``max(1, A / REFERENCE_DL)`` (:func:`slack`), so the impact order bounds what the rest
of a list can add.

The search (:class:`Plan`, run by ``PgSearchIndex.lexical_hits``) is MaxScore with
impact-ordered lists, exact:

1. a **seed**: the best few postings of every word (by impact), scored exactly; the
   ``k``-th best score in scope is the threshold ``theta``. When those rows hold fewer
   than ``k`` in the scope and filters, a bounded number of rows matching any word
   there seed it instead; a seed that still holds fewer than ``k`` has seen every
   matching row in scope and is the answer;
2. words sorted by their upper bound ``UB(t) = idf(t) * max impact(t) * slack``; the
   longest prefix whose bounds sum to less than ``theta`` is *non-essential*: a row that
   holds none of the other (essential) words scores below ``theta`` and cannot be in the
   top ``k``;
3. each essential word's list is read down to the impact at which that word, with every
   other word at its bound, could still reach ``theta`` (:meth:`Plan.read_from`): a
   top-``k`` row holds an essential word at or above that impact, or its score is below
   ``theta``;
4. a row read there is scored exactly only if its known weights plus the bounds of what
   was not read can reach ``theta`` (:meth:`Plan.unread_cap`).

The seed's rows and the rows of step 4 hold the true top ``k``. Nothing here does I/O.

Must not import: celery, tasks/, workers/, api/, cli/, or any driver.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

K1 = 1.2
B = 0.75
REFERENCE_DL = 64.0  # quarry_bm25_impact's mean length (migrations/sql/0020_lexical_index.sql)
# float4 impacts and float8 arithmetic: bounds are widened by this much so that a
# rounding never drops a row that ties the threshold.
MARGIN = 1e-5


def idf(docs: float, df: float) -> float:
    """BM25's inverse document frequency (never negative)."""
    return math.log(1.0 + (docs - df + 0.5) / (df + 0.5))


def weight(tf: float, dl: float, avgdl: float) -> float:
    """A word's BM25 term weight in a row of ``dl`` distinct words."""
    return tf * (K1 + 1.0) / (tf + K1 * (1.0 - B + B * dl / avgdl))


def impact(tf: int, dl: int) -> float:
    """The stored impact: :func:`weight` at :data:`REFERENCE_DL` (as ``quarry_bm25_impact``)."""
    return weight(tf, dl, REFERENCE_DL)


def slack(avgdl: float) -> float:
    """The factor that bounds a weight at ``avgdl`` by the stored impact: with A above
    the reference, each part of the denominator shrinks by at most REFERENCE_DL / A;
    below it the weight is smaller than the impact."""
    return max(1.0, avgdl / REFERENCE_DL) * (1.0 + MARGIN)


@dataclass(frozen=True)
class TermStats:
    """A query word's statistics over the searched repositories."""

    lexeme: str
    df: int
    max_impact: float


@dataclass(frozen=True)
class Plan:
    """The BM25 constants of one search, and the bounds that let it read less."""

    docs: int
    avgdl: float
    idf: Mapping[str, float]
    bound: Mapping[str, float]  # UB(t): the most word t adds to any row
    slack: float
    postings: int = 0  # the query words' postings in all (the cost of reading them all)

    @classmethod
    def of(cls, docs: int, total_len: int, terms: Sequence[TermStats]) -> Plan:
        """The plan for words of these statistics (words no row holds are left out)."""
        docs = max(docs, 1)
        avgdl = max(1.0, total_len / docs)
        factor = slack(avgdl)
        held = [t for t in terms if t.df > 0]
        idfs = {t.lexeme: idf(docs, t.df) for t in held}
        bounds = {t.lexeme: idfs[t.lexeme] * t.max_impact * factor for t in held}
        postings = sum(t.df for t in held)
        return cls(docs=docs, avgdl=avgdl, idf=idfs, bound=bounds, slack=factor, postings=postings)

    @property
    def lexemes(self) -> list[str]:
        return sorted(self.idf)

    def essential(self, theta: float) -> list[str]:
        """The words a top-``k`` row must hold one of: all but the longest prefix (by
        bound, ascending) whose bounds sum to less than ``theta``."""
        total = 0.0
        ordered = sorted(self.bound, key=lambda t: (self.bound[t], t))
        for position, lexeme in enumerate(ordered):
            total += self.bound[lexeme]
            if total >= theta * (1.0 - MARGIN):
                return ordered[position:]
        return []

    def read_from(self, theta: float) -> dict[str, float]:
        """Per essential word, the smallest stored impact worth reading: below it, the
        word's weight plus every other word's bound stays under ``theta``. 0: the whole
        list."""
        essential = self.essential(theta)
        total = sum(self.bound.values())
        found = {}
        for lexeme in essential:
            rest = total - self.bound[lexeme]
            needed = (theta * (1.0 - MARGIN) - rest) / (self.idf[lexeme] * self.slack)
            found[lexeme] = max(0.0, needed)
        return found

    def unread_cap(self, lexeme: str, from_impact: float) -> float:
        """The most a word adds to a row not found in its list read from ``from_impact``."""
        return self.idf[lexeme] * from_impact * self.slack

    def not_essential_bound(self, theta: float) -> float:
        """What the non-essential words add to any row, at most."""
        essential = set(self.essential(theta))
        return sum(b for t, b in self.bound.items() if t not in essential)

    def score(self, held: Mapping[str, tuple[int, int]]) -> float:
        """A row's exact score from its (tf, dl) per query word."""
        return sum(
            self.idf[t] * weight(tf, dl, self.avgdl)
            for t, (tf, dl) in held.items()
            if t in self.idf
        )
