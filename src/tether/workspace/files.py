"""Reading and changing workspace files.

- ``read_file`` returns a line range (capped) and the ``sha256`` of the whole file.
- A change is *planned* without any lock (it computes the new text and a unified diff to
  show a person), then *applied* under the file-lock manager's lock: the file's ``sha256``
  is checked against the one the agent read (``FileConflict`` if it changed) and the new
  text is written to a temporary file in the same directory and renamed over the old one,
  so a reader sees the old file or the new one, never a torn write.
"""

from __future__ import annotations

import asyncio
import difflib
import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tether.workspace.locks import FileLocks
from tether.workspace.paths import PathRefused, Workspace

MAX_DIFF_CHARS = 64_000
NEW_FILE = ""  # the sha256 to pass for a file that must not exist yet


class FileConflict(Exception):
    """The file changed since the agent read it (or exists when it should not)."""

    code = "conflict"


class EditRefused(ValueError):
    """The change cannot be made as asked (snippet missing or ambiguous, file too big)."""

    code = "invalid"


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _current(path: Path, max_bytes: int) -> bytes | None:
    try:
        if path.stat().st_size > max_bytes:
            raise EditRefused(f"{path.name} is larger than {max_bytes} bytes")
        return path.read_bytes()
    except FileNotFoundError:
        return None
    except IsADirectoryError:
        raise EditRefused(f"{path.name} is a directory") from None


def read_file(
    workspace: Workspace,
    relative: str,
    max_file_bytes: int,
    max_chars: int,
    start_line: int | None = None,
    end_line: int | None = None,
) -> dict[str, Any]:
    """Lines ``start_line..end_line`` (1-based, inclusive) cut at ``max_chars``, with the
    ``sha256`` of the whole file (what a write must present)."""
    path = workspace.resolve(relative)
    data = _current(path, max_file_bytes)
    if data is None:
        raise PathRefused(f"no such file: {relative!r}")
    lines = data.decode("utf-8", errors="replace").splitlines(keepends=True)
    first = max(1, start_line or 1)
    last = min(len(lines), end_line or len(lines))
    content = "".join(lines[first - 1 : last])
    truncated = len(content) > max_chars
    return {
        "path": workspace.relative(path),
        "sha256": sha256_of(data),
        "start_line": first,
        "end_line": last,
        "total_lines": len(lines),
        "content": content[:max_chars],
        "truncated": truncated,
    }


@dataclass(frozen=True, slots=True)
class PlannedChange:
    path: str
    expected_sha256: str
    new_text: str
    diff: str

    def details(self) -> dict[str, str]:
        """What the approval shows: the path and the unified diff (the UI contract)."""
        return {"path": self.path, "diff": self.diff}


def unified_diff(relative: str, old: str, new: str) -> str:
    lines = difflib.unified_diff(
        old.splitlines(keepends=True),
        new.splitlines(keepends=True),
        fromfile=f"a/{relative}" if old else "/dev/null",
        tofile=f"b/{relative}",
    )
    text = "".join(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n"
                   for line in lines)  # fmt: skip
    return text if len(text) <= MAX_DIFF_CHARS else text[:MAX_DIFF_CHARS] + "\n… diff truncated\n"


def _checked_current(path: Path, expected: str, max_bytes: int) -> str:
    data = _current(path, max_bytes)
    actual = NEW_FILE if data is None else sha256_of(data)
    if actual != expected:
        raise FileConflict(
            "the file changed since it was read (sha256 differs); read it again"
            if data is not None and expected
            else ("the file already exists; read it first" if data is not None else
                  "the file no longer exists")
        )  # fmt: skip
    return "" if data is None else data.decode("utf-8", errors="replace")


def plan_write(
    workspace: Workspace, relative: str, content: str, expected_sha256: str, max_bytes: int
) -> PlannedChange:
    """The change ``write_file`` would make (no lock, nothing written)."""
    path = workspace.resolve(relative)
    old = _checked_current(path, expected_sha256, max_bytes)
    rel = workspace.relative(path)
    return PlannedChange(rel, expected_sha256, content, unified_diff(rel, old, content))


def plan_edit(
    workspace: Workspace, relative: str, old: str, new: str, expected_sha256: str, max_bytes: int
) -> PlannedChange:
    """The change ``edit_file`` would make: ``old`` must occur exactly once."""
    if not old:
        raise EditRefused("'old' must not be empty")
    path = workspace.resolve(relative)
    text = _checked_current(path, expected_sha256, max_bytes)
    count = text.count(old)
    if count != 1:
        where = "does not occur" if count == 0 else f"occurs {count} times"
        raise EditRefused(f"the snippet {where} in {relative}; it must occur exactly once")
    rel = workspace.relative(path)
    updated = text.replace(old, new, 1)
    return PlannedChange(rel, expected_sha256, updated, unified_diff(rel, text, updated))


def _atomic_write(path: Path, text: str) -> bytes:
    data = text.encode("utf-8")
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = path.stat().st_mode & 0o7777 if path.exists() else 0o644
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp, mode)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return data


async def apply_change(
    workspace: Workspace,
    change: PlannedChange,
    locks: FileLocks,
    owner: str,
    timeout_s: float,
    max_bytes: int,
) -> dict[str, Any]:
    """Check the ``sha256`` and write, atomically, while holding the file's lock."""
    path = workspace.resolve(change.path)
    async with locks.hold(str(path), owner, timeout_s):
        await asyncio.to_thread(_checked_current, path, change.expected_sha256, max_bytes)
        data = await asyncio.to_thread(_atomic_write, path, change.new_text)
    return {"path": change.path, "sha256": sha256_of(data), "bytes": len(data)}
