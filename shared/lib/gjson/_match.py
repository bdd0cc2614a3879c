"""gjson's wildcard matching (tidwall/match): ``*`` any run, ``?`` one character.

Matching splits the pattern at ``*`` and places each chunk at its leftmost
possible position, which is correct for glob patterns and runs in
O(len(text) * len(pattern)) - there is no backtracking to exploit.
"""

from __future__ import annotations

import re
from functools import lru_cache


def _chunk_regex(chunk: list[tuple[str, bool]]) -> re.Pattern[str]:
    parts = []
    for ch, wild in chunk:
        parts.append("." if wild else re.escape(ch))
    return re.compile("".join(parts), re.DOTALL)


class Glob:
    """A compiled wildcard pattern."""

    __slots__ = ("_chunks", "_exact", "_last_width", "pattern")

    def __init__(self, tokens: list[tuple[str, str]]) -> None:
        # tokens: ("lit", ch) | ("any", "*") | ("one", "?")
        self.pattern = "".join(t[1] for t in tokens)
        chunks: list[list[tuple[str, bool]]] = [[]]
        for kind, ch in tokens:
            if kind == "any":
                # a run of '*' is one '*': empty middle chunks would cost a step per chunk
                # and per key without consuming text ('*' * 60000 over 5000 keys took 13 s)
                if len(chunks) > 1 and not chunks[-1]:
                    continue
                chunks.append([])
            else:
                chunks[-1].append((ch, kind == "one"))
        self._exact = len(chunks) == 1
        self._chunks = [_chunk_regex(c) for c in chunks]
        self._last_width = len(chunks[-1])

    def match(self, text: str) -> bool:
        chunks = self._chunks
        if self._exact:
            return chunks[0].fullmatch(text) is not None
        first, last = chunks[0], chunks[-1]
        m = first.match(text)
        if m is None:
            return False
        pos = m.end()
        end = len(text)
        # the last chunk must sit at the very end
        last_pat = last.pattern
        if last_pat:
            # find a match of the last chunk that ends at len(text)
            start = end - self._last_width
            if start < pos or last.fullmatch(text, start) is None:
                return False
            end = start
        for chunk in chunks[1:-1]:
            if not chunk.pattern:
                continue
            m = chunk.search(text, pos, end)
            if m is None:
                return False
            pos = m.end()
        return pos <= end


def tokens_from_plain(pattern: str) -> list[tuple[str, str]]:
    """Tokens for a pattern where every ``*``/``?`` is a wildcard."""
    out: list[tuple[str, str]] = []
    for ch in pattern:
        if ch == "*":
            out.append(("any", "*"))
        elif ch == "?":
            out.append(("one", "?"))
        else:
            out.append(("lit", ch))
    return out


@lru_cache(maxsize=4096)
def glob(pattern: str) -> Glob:
    return Glob(tokens_from_plain(pattern))


def match(text: str, pattern: str) -> bool:
    """gjson ``match.Match(text, pattern)``."""
    return glob(pattern).match(text)
