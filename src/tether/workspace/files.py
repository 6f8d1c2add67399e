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
import contextlib
import difflib
import hashlib
import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from tether.workspace.locks import FileLocks
from tether.workspace.paths import PathRefused, Workspace

MAX_DIFF_CHARS = 64_000
NO_FOLLOW_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
NEW_FILE = ""  # the sha256 to pass for a file that must not exist yet


class FileConflict(Exception):
    """The file changed since the agent read it (or exists when it should not)."""

    code = "conflict"


class EditRefused(ValueError):
    """The change cannot be made as asked (snippet missing or ambiguous, file too big)."""

    code = "invalid"


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _current(workspace: Workspace, path: Path, max_bytes: int) -> bytes | None:
    """The file's bytes read without following any link (``None``: it does not exist)."""
    if path == workspace.root:
        raise EditRefused("the workspace root is a directory")
    try:
        dir_fd, name = _open_parent(workspace, workspace.relative(path), create=False)
    except FileNotFoundError:
        return None
    try:
        return _read_at(dir_fd, name, max_bytes)
    finally:
        os.close(dir_fd)


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
    data = _current(workspace, path, max_file_bytes)
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


def _check_sha(data: bytes | None, expected: str) -> None:
    actual = NEW_FILE if data is None else sha256_of(data)
    if actual != expected:
        raise FileConflict(
            "the file changed since it was read (sha256 differs); read it again"
            if data is not None and expected
            else ("the file already exists; read it first" if data is not None else
                  "the file no longer exists")
        )  # fmt: skip


def _checked_current(workspace: Workspace, path: Path, expected: str, max_bytes: int) -> str:
    data = _current(workspace, path, max_bytes)
    _check_sha(data, expected)
    return "" if data is None else data.decode("utf-8", errors="replace")


def plan_write(
    workspace: Workspace, relative: str, content: str, expected_sha256: str, max_bytes: int
) -> PlannedChange:
    """The change ``write_file`` would make (no lock, nothing written)."""
    path = workspace.resolve(relative)
    old = _checked_current(workspace, path, expected_sha256, max_bytes)
    rel = workspace.relative(path)
    return PlannedChange(rel, expected_sha256, content, unified_diff(rel, old, content))


def plan_edit(
    workspace: Workspace, relative: str, old: str, new: str, expected_sha256: str, max_bytes: int
) -> PlannedChange:
    """The change ``edit_file`` would make: ``old`` must occur exactly once."""
    if not old:
        raise EditRefused("'old' must not be empty")
    path = workspace.resolve(relative)
    text = _checked_current(workspace, path, expected_sha256, max_bytes)
    count = text.count(old)
    if count != 1:
        where = "does not occur" if count == 0 else f"occurs {count} times"
        raise EditRefused(f"the snippet {where} in {relative}; it must occur exactly once")
    rel = workspace.relative(path)
    updated = text.replace(old, new, 1)
    return PlannedChange(rel, expected_sha256, updated, unified_diff(rel, text, updated))


def _open_parent(workspace: Workspace, relative: str, create: bool = True) -> tuple[int, str]:
    """A descriptor of ``relative``'s directory, opened one component at a time from the
    root without following any link (missing directories are made when ``create``, else
    ``FileNotFoundError``), and the file name. A directory swapped for a symlink after the
    path was checked is refused, never followed out of the root."""
    *dirs, name = PurePosixPath(relative).parts
    fd = os.open(workspace.root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for part in dirs:
            try:
                nxt = os.open(part, NO_FOLLOW_DIR, dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    raise
                os.mkdir(part, 0o755, dir_fd=fd)
                nxt = os.open(part, NO_FOLLOW_DIR, dir_fd=fd)
            os.close(fd)
            fd = nxt
    except FileNotFoundError:
        os.close(fd)
        raise
    except OSError as exc:
        os.close(fd)
        raise PathRefused(f"{relative!r} is no longer a plain path inside the workspace") from exc
    return fd, name


def _read_at(dir_fd: int, name: str, max_bytes: int) -> bytes | None:
    """The regular file ``name`` in ``dir_fd`` (not a link, FIFO or device), or ``None``."""
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dir_fd)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise PathRefused(f"{name!r} is not a regular file: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise EditRefused(f"{name} is not a regular file")
        data = handle.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise EditRefused(f"{name} is larger than {max_bytes} bytes")
    return data


def _write_at(dir_fd: int, name: str, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``name`` and rename it over ``name``."""
    try:
        mode = os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode & 0o7777
    except FileNotFoundError:
        mode = 0o644
    temp = f".{name}.{secrets.token_hex(6)}.tmp"
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode, dir_fd=dir_fd)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fchmod(handle.fileno(), mode)
            os.fsync(handle.fileno())
        os.replace(temp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp, dir_fd=dir_fd)
        raise


def _check_and_write(workspace: Workspace, change: PlannedChange, max_bytes: int) -> bytes:
    dir_fd, name = _open_parent(workspace, change.path)
    try:
        _check_sha(_read_at(dir_fd, name, max_bytes), change.expected_sha256)
        data = change.new_text.encode("utf-8")
        _write_at(dir_fd, name, data)
        return data
    finally:
        os.close(dir_fd)


async def apply_change(
    workspace: Workspace,
    change: PlannedChange,
    locks: FileLocks,
    owner: str,
    timeout_s: float,
    max_bytes: int,
) -> dict[str, Any]:
    """Check the ``sha256`` and write, atomically, while holding the file's lock. The path
    is walked again inside the lock without following links, so nothing swapped in while
    waiting (a symlink out of the root) can redirect the write."""
    path = workspace.resolve(change.path)
    async with locks.hold(str(path), owner, timeout_s):
        data = await asyncio.to_thread(_check_and_write, workspace, change, max_bytes)
    return {"path": change.path, "sha256": sha256_of(data), "bytes": len(data)}
