"""The repo map (file tree with top-level symbols) and the cache that serves it.

A workspace is scanned once per change fingerprint: the scan feeds both the map and the
search index, kept together in one bounded LRU keyed by ``(root, fingerprint)``, capped in
entries and in (estimated) bytes. Any session on the same root reuses it; an entry for an
older fingerprint of the same root is dropped when a newer one is stored.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from tether.workspace.lru import BoundedLRU
from tether.workspace.paths import Workspace
from tether.workspace.scan import ScanLimits, SourceFile, Stamp, read_sources, stamp
from tether.workspace.search import SearchIndex

RENDER_MAX_CHARS = 12_000
FILE_OVERHEAD_BYTES = 128
SYMBOL_OVERHEAD_BYTES = 96


@dataclass(frozen=True, slots=True)
class RepoMap:
    files: tuple[SourceFile, ...]
    truncated: bool

    def render(self, under: str = "", max_chars: int = RENDER_MAX_CHARS) -> str:
        """One line per file (``path: kind name, …``), cut at ``max_chars`` with a note."""
        lines: list[str] = []
        used = 0
        chosen = [f for f in self.files if not under or f.path.startswith(under.rstrip("/") + "/")]
        for shown, source in enumerate(chosen):
            names = ", ".join(f"{s.kind} {s.name}" for s in source.symbols)
            line = f"{source.path}: {names}" if names else source.path
            if used + len(line) + 1 > max_chars:
                lines.append(f"… {len(chosen) - shown} more files")
                break
            lines.append(line)
            used += len(line) + 1
        if self.truncated:
            lines.append("… (the listing stopped at the file cap)")
        return "\n".join(lines)

    def symbols(self) -> dict[str, list[tuple[str, str]]]:
        """Path → [(kind, name)] for every file with symbols (what tests compare)."""
        return {f.path: [(s.kind, s.name) for s in f.symbols] for f in self.files if f.symbols}


@dataclass(frozen=True, slots=True)
class Indexed:
    """One scanned state of a workspace: its map and its search index."""

    root: Path
    fingerprint: str
    map: RepoMap
    search: SearchIndex

    @property
    def size_bytes(self) -> int:
        files = sum(
            FILE_OVERHEAD_BYTES + len(f.path) + SYMBOL_OVERHEAD_BYTES * len(f.symbols)
            for f in self.map.files
        )
        return files + self.search.size_bytes


def build(root: Path, seen: Stamp, limits: ScanLimits) -> Indexed:
    sources = read_sources(root, seen, limits)
    search = SearchIndex(sources)  # keeps the lines it needs; the map keeps no text
    listed = tuple(replace(source, text=None) for source in sources)
    return Indexed(root, seen.fingerprint, RepoMap(listed, seen.listing.truncated), search)


class IndexCache:
    """Scanned workspaces by ``(root, fingerprint)``, least recently used out first."""

    def __init__(
        self,
        max_entries: int,
        max_bytes: int,
        limits: ScanLimits,
        on_evict: Callable[[], None] | None = None,
        on_lookup: Callable[[bool], None] | None = None,
    ) -> None:
        self.lru: BoundedLRU[tuple[str, str], Indexed] = BoundedLRU(
            max_entries, max_bytes, lambda entry: entry.size_bytes, on_evict
        )
        self._limits = limits
        self._on_lookup = on_lookup
        self._latest: dict[str, str] = {}

    async def stamp(self, workspace: Workspace) -> Stamp:
        """What the workspace holds now (a walk and a stat per file; no file is read)."""
        return await asyncio.to_thread(stamp, workspace.root, self._limits)

    async def get(self, workspace: Workspace, seen: Stamp | None = None) -> Indexed:
        """The workspace's current state (as of ``seen``, or now), scanned only when its
        fingerprint is new."""
        seen = seen or await self.stamp(workspace)
        key = (str(workspace.root), seen.fingerprint)
        cached = self.lru.get(key)
        if self._on_lookup is not None:
            self._on_lookup(cached is not None)
        if cached is not None:
            return cached
        indexed = await asyncio.to_thread(build, workspace.root, seen, self._limits)
        previous = self._latest.get(key[0])
        if previous is not None and previous != seen.fingerprint:
            self.lru.discard((key[0], previous))
        self.lru.put(key, indexed)
        self._latest[key[0]] = seen.fingerprint
        if len(self._latest) > 4 * self.lru.max_entries:
            self._latest = {root: fp for root, fp in self._latest.items() if (root, fp) in self.lru}
        return indexed
