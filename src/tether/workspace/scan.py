"""One pass over a workspace: its listing, a change fingerprint, and each text file's
content and symbols. Blocking file I/O: callers run it in a thread."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from tether.workspace.ignore import Listing, list_files
from tether.workspace.symbols import Symbol, symbols_of

BINARY_SNIFF_BYTES = 8192


@dataclass(frozen=True, slots=True)
class ScanLimits:
    max_files: int = 20_000
    max_file_bytes: int = 1_048_576


@dataclass(frozen=True, slots=True)
class Stamp:
    """What the fingerprint saw: the listing and each file's (size, mtime_ns)."""

    listing: Listing
    stats: dict[str, tuple[int, int]]
    fingerprint: str


@dataclass(frozen=True, slots=True)
class SourceFile:
    path: str
    size: int
    text: str | None  # None: binary or larger than the cap (listed, not read)
    symbols: tuple[Symbol, ...]


def stamp(root: Path, limits: ScanLimits) -> Stamp:
    """The listing and a fingerprint that changes when any listed file is added, removed,
    resized or touched."""
    listing = list_files(root, limits.max_files)
    digest = hashlib.sha256(b"truncated" if listing.truncated else b"complete")
    stats: dict[str, tuple[int, int]] = {}
    for relative in listing.files:
        try:
            info = os.stat(root / relative)
        except OSError:
            continue
        stats[relative] = (info.st_size, info.st_mtime_ns)
        digest.update(f"{relative}\0{info.st_size}\0{info.st_mtime_ns}\n".encode())
    return Stamp(listing, stats, digest.hexdigest())


def read_text(path: Path, max_bytes: int) -> str | None:
    """The file as text, or ``None`` when it is larger than ``max_bytes`` or binary."""
    try:
        if path.stat().st_size > max_bytes:
            return None
        data = path.read_bytes()
    except OSError:
        return None
    if b"\0" in data[:BINARY_SNIFF_BYTES]:
        return None
    return data.decode("utf-8", errors="replace")


def read_sources(root: Path, seen: Stamp, limits: ScanLimits) -> list[SourceFile]:
    files: list[SourceFile] = []
    for relative in seen.listing.files:
        size = seen.stats.get(relative, (0, 0))[0]
        text = read_text(root / relative, limits.max_file_bytes)
        symbols = tuple(symbols_of(relative, text)) if text is not None else ()
        files.append(SourceFile(relative, size, text, symbols))
    return files
