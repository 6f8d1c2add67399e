"""Ranked code search: BM25 over identifiers (whole and split at ``snake_case`` and
``camelCase`` boundaries) and words, plus a bonus for an exact (case-insensitive)
substring match and for a chunk that defines a symbol the query names.

Files are cut into chunks at top-level symbols (so a function and its docstring are one
chunk), and long stretches into windows of ``WINDOW_LINES``. Pure: no I/O.
"""

from __future__ import annotations

import itertools
import math
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

from tether.workspace.scan import SourceFile
from tether.workspace.symbols import Symbol

WINDOW_LINES = 60
K1 = 1.2
B = 0.75
EXACT_BONUS = 10.0
SYMBOL_BONUS = 5.0
MAX_TERM_CHARS = 64
SNIPPET_LINES = 4
SNIPPET_LINE_CHARS = 200

_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|[0-9]+")
_CAMEL = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+")


def terms(text: str) -> Iterator[str]:
    """Lower-cased identifiers, and their parts when they are compound."""
    for match in _WORD.finditer(text):
        word = match.group()
        if len(word) > MAX_TERM_CHARS:
            continue
        yield word.lower()
        parts = [p.lower() for piece in word.split("_") for p in _CAMEL.findall(piece)]
        if len(parts) > 1:
            yield from parts


@dataclass(frozen=True, slots=True)
class Chunk:
    path: str
    start_line: int
    end_line: int
    lines: tuple[str, ...]
    symbols: tuple[str, ...]
    length: int


@dataclass(frozen=True, slots=True)
class Hit:
    path: str
    start_line: int
    end_line: int
    snippet: str
    score: float
    symbol: str | None

    def to_json(self) -> dict[str, object]:
        data: dict[str, object] = {
            "path": self.path,
            "start_line": self.start_line,
            "end_line": self.end_line,
            "snippet": self.snippet,
            "score": round(self.score, 3),
        }
        if self.symbol:
            data["symbol"] = self.symbol
        return data


def _spans(total: int, symbols: tuple[Symbol, ...]) -> list[tuple[int, int]]:
    starts = sorted({s.line for s in symbols if 1 <= s.line <= total})
    if not starts or starts[0] != 1:
        starts.insert(0, 1)
    bounds = [*starts, total + 1]
    spans: list[tuple[int, int]] = []
    for start, following in itertools.pairwise(bounds):
        for low in range(start, following, WINDOW_LINES):
            spans.append((low, min(following - 1, low + WINDOW_LINES - 1)))
    return spans


def chunk_file(source: SourceFile) -> list[Chunk]:
    if source.text is None:
        return []
    lines = source.text.splitlines()
    chunks = []
    for start, end in _spans(len(lines), source.symbols):
        named = tuple(s.name for s in source.symbols if start <= s.line <= end)
        body = tuple(lines[start - 1 : end])
        chunks.append(Chunk(source.path, start, end, body, named, 0))
    return chunks


class SearchIndex:
    """An inverted index over the chunks of one workspace state."""

    def __init__(self, files: list[SourceFile]) -> None:
        self.chunks: list[Chunk] = []
        self._postings: dict[str, list[tuple[int, int]]] = {}
        for source in files:
            for chunk in chunk_file(source):
                self._add(chunk)
        total = sum(c.length for c in self.chunks)
        self._avg_length = total / len(self.chunks) if self.chunks else 1.0
        self.size_bytes = sum(sum(map(len, c.lines)) + 96 for c in self.chunks) + 48 * sum(
            len(p) for p in self._postings.values()
        )

    def _add(self, chunk: Chunk) -> None:
        counts = Counter(terms("\n".join(chunk.lines)))
        index = len(self.chunks)
        self.chunks.append(
            Chunk(chunk.path, chunk.start_line, chunk.end_line, chunk.lines, chunk.symbols,
                  sum(counts.values()))
        )  # fmt: skip
        for term, count in counts.items():
            self._postings.setdefault(term, []).append((index, count))

    def _bm25(self, query_terms: set[str]) -> dict[int, float]:
        scores: dict[int, float] = {}
        n = len(self.chunks)
        for term in query_terms:
            postings = self._postings.get(term, [])
            idf = math.log(1 + (n - len(postings) + 0.5) / (len(postings) + 0.5))
            for index, tf in postings:
                norm = K1 * (1 - B + B * self.chunks[index].length / self._avg_length)
                scores[index] = scores.get(index, 0.0) + idf * tf * (K1 + 1) / (tf + norm)
        return scores

    def search(self, query: str, limit: int = 10) -> list[Hit]:
        """The best ``limit`` chunks for ``query``, best first (ties: path, then line)."""
        query_terms = set(terms(query))
        needle = query.strip().lower()
        scores = self._bm25(query_terms)
        candidates = scores.keys() if query_terms else range(len(self.chunks))
        for index in list(candidates):
            chunk = self.chunks[index]
            bonus = 0.0
            if needle and any(needle in line.lower() for line in chunk.lines):
                bonus += EXACT_BONUS
            if query_terms & {s.lower() for s in chunk.symbols}:
                bonus += SYMBOL_BONUS
            if bonus or index in scores:
                scores[index] = scores.get(index, 0.0) + bonus
        ranked = sorted(
            scores.items(),
            key=lambda item: (-item[1], self.chunks[item[0]].path, self.chunks[item[0]].start_line),
        )
        top = ranked[:limit]
        return [self._hit(self.chunks[i], score, needle, query_terms) for i, score in top]

    def _hit(self, chunk: Chunk, score: float, needle: str, query_terms: set[str]) -> Hit:
        best = 0
        best_score = -1
        for offset, line in enumerate(chunk.lines):
            exact = 100 if needle and needle in line.lower() else 0
            found = exact + len(set(terms(line)) & query_terms)
            if found > best_score:
                best, best_score = offset, found
        window = chunk.lines[best : best + SNIPPET_LINES]
        snippet = "\n".join(line[:SNIPPET_LINE_CHARS] for line in window)
        symbol = next((s for s in chunk.symbols), None)
        return Hit(chunk.path, chunk.start_line, chunk.end_line, snippet, score, symbol)
