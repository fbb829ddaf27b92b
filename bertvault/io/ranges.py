"""A set of half-open byte ranges [start, end), kept merged and sorted."""

from __future__ import annotations

import bisect


class RangeSet:
    def __init__(self, ranges: list[tuple[int, int]] | None = None) -> None:
        self._starts: list[int] = []
        self._ends: list[int] = []
        for start, end in ranges or ():
            self.add(start, end)

    def add(self, start: int, end: int) -> None:
        if end <= start:
            return
        # First range that could touch [start, end): the one ending at or after start.
        i = bisect.bisect_left(self._ends, start)
        j = i
        while j < len(self._starts) and self._starts[j] <= end:
            start = min(start, self._starts[j])
            end = max(end, self._ends[j])
            j += 1
        self._starts[i:j] = [start]
        self._ends[i:j] = [end]

    def prefix(self) -> int:
        """Length of the run starting at byte 0 (0 if byte 0 is missing)."""
        return self._ends[0] if self._starts and self._starts[0] == 0 else 0

    def total(self) -> int:
        return sum(e - s for s, e in zip(self._starts, self._ends, strict=True))

    def missing(self, size: int) -> list[tuple[int, int]]:
        gaps, pos = [], 0
        for start, end in zip(self._starts, self._ends, strict=True):
            if start > pos:
                gaps.append((pos, min(start, size)))
            pos = max(pos, end)
        if pos < size:
            gaps.append((pos, size))
        return [(s, e) for s, e in gaps if e > s]

    def pairs(self) -> list[tuple[int, int]]:
        return list(zip(self._starts, self._ends, strict=True))

    def copy(self) -> RangeSet:
        clone = RangeSet()
        clone._starts, clone._ends = list(self._starts), list(self._ends)
        return clone

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RangeSet) and self.pairs() == other.pairs()

    def __repr__(self) -> str:
        return f"RangeSet({self.pairs()})"


def chunks(gaps: list[tuple[int, int]], size: int) -> list[tuple[int, int]]:
    """Cut gaps into pieces of at most `size` bytes, in file order."""
    return [(s, min(s + size, end)) for start, end in gaps for s in range(start, end, size)]
