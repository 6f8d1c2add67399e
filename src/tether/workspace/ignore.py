"""What a workspace listing skips: VCS metadata, virtualenvs, dependency and build output,
and whatever ``.gitignore`` files say (via ``pathspec``, with git's own semantics).

Each directory's ``.gitignore`` applies to the paths under it. Within one file the last
matching pattern wins (``!keep.log`` works); across files, a path ignored by any is
ignored. Symlinks are listed only when they point to a file inside the root; symlinked
directories are never descended into, so a symlink loop cannot make a walk run forever.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pathspec

ALWAYS_SKIPPED = frozenset(
    {
        ".git", ".hg", ".svn", ".venv", "venv", "node_modules", "__pycache__",
        ".mypy_cache", ".pytest_cache", ".ruff_cache", ".tox", ".nox", ".idea",
        "build", "dist", "target", ".next", ".cache", ".eggs",
    }
)  # fmt: skip
GITIGNORE_MAX_BYTES = 256 * 1024


def _skipped_dir(entry: os.DirEntry[str]) -> bool:
    name = entry.name
    if name in ALWAYS_SKIPPED or name.endswith(".egg-info"):
        return True
    return os.path.exists(os.path.join(entry.path, "pyvenv.cfg"))  # a virtualenv by any name


def _read_gitignore(directory: str) -> pathspec.GitIgnoreSpec | None:
    path = os.path.join(directory, ".gitignore")
    try:
        if os.path.getsize(path) > GITIGNORE_MAX_BYTES:
            return None
        with open(path, encoding="utf-8", errors="replace") as handle:
            return pathspec.GitIgnoreSpec.from_lines(handle.read().splitlines())
    except OSError:
        return None


@dataclass(frozen=True, slots=True)
class _Rules:
    """The ``.gitignore`` specs in force in one directory, each with its base (relative)."""

    specs: tuple[tuple[str, pathspec.GitIgnoreSpec], ...] = ()

    def ignored(self, relative: str, is_dir: bool) -> bool:
        for base, spec in self.specs:
            below = relative[len(base) + 1 :] if base else relative
            if spec.match_file(below + "/" if is_dir else below):
                return True
        return False

    def entering(self, directory: str, relative: str) -> _Rules:
        spec = _read_gitignore(directory)
        return _Rules((*self.specs, (relative, spec))) if spec else self


@dataclass(frozen=True, slots=True)
class Listing:
    """Files (POSIX paths relative to the root, sorted) and whether the cap cut it short."""

    files: tuple[str, ...]
    truncated: bool


def list_files(root: Path, max_files: int) -> Listing:
    """Every file under ``root`` that is not ignored, at most ``max_files`` of them."""
    found: list[str] = []
    stack: list[tuple[str, str, _Rules]] = [(str(root), "", _Rules().entering(str(root), ""))]
    truncated = False
    while stack and not truncated:
        directory, relative, rules = stack.pop()
        try:
            entries = sorted(os.scandir(directory), key=lambda e: e.name)
        except OSError:
            continue
        for entry in entries:
            child = f"{relative}/{entry.name}" if relative else entry.name
            if entry.is_dir(follow_symlinks=False):
                if not _skipped_dir(entry) and not rules.ignored(child, True):
                    stack.append((entry.path, child, rules.entering(entry.path, child)))
            elif _listable_file(root, entry) and not rules.ignored(child, False):
                if len(found) >= max_files:
                    truncated = True
                    break
                found.append(child)
    return Listing(tuple(sorted(found)), truncated)


def _listable_file(root: Path, entry: os.DirEntry[str]) -> bool:
    if not entry.is_symlink():
        return entry.is_file(follow_symlinks=False)
    target = Path(os.path.realpath(entry.path))
    return target.is_relative_to(root) and target.is_file()
