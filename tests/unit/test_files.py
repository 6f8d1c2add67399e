"""File tools: read with ranges and sha256; planned changes with diffs; applying under the
lock with the sha256 check and an atomic rename."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tether.workspace import files
from tether.workspace.locks import LocalLocks, LockTimeout
from tether.workspace.paths import PathRefused, Workspace, open_workspace

MAX_BYTES = 1_000_000
TEXT = "one\ntwo\nthree\nfour\n"


@pytest.fixture
def workspace(tmp_path: Path) -> Workspace:
    (tmp_path / "w").mkdir()
    (tmp_path / "w" / "a.txt").write_text(TEXT)
    (tmp_path / "secret.txt").write_text("s")
    return open_workspace(str(tmp_path), "w")


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def test_read_returns_a_range_and_the_whole_files_sha(workspace: Workspace) -> None:
    got = files.read_file(workspace, "a.txt", MAX_BYTES, 1000, start_line=2, end_line=3)
    assert got == {
        "path": "a.txt", "sha256": sha(TEXT), "start_line": 2, "end_line": 3,
        "total_lines": 4, "content": "two\nthree\n", "truncated": False,
    }  # fmt: skip
    capped = files.read_file(workspace, "a.txt", MAX_BYTES, 5)
    assert (capped["content"], capped["truncated"]) == ("one\nt", True)
    with pytest.raises(PathRefused):
        files.read_file(workspace, "../secret.txt", MAX_BYTES, 1000)
    with pytest.raises(PathRefused, match="no such file"):
        files.read_file(workspace, "missing.txt", MAX_BYTES, 1000)
    with pytest.raises(files.EditRefused, match="larger than"):
        files.read_file(workspace, "a.txt", 3, 1000)


def test_plan_edit_needs_exactly_one_occurrence_and_the_right_sha(workspace: Workspace) -> None:
    change = files.plan_edit(workspace, "a.txt", "two", "2", sha(TEXT), MAX_BYTES)
    assert change.new_text == TEXT.replace("two", "2")
    assert change.details() == {
        "path": "a.txt",
        "diff": "--- a/a.txt\n+++ b/a.txt\n@@ -1,4 +1,4 @@\n one\n-two\n+2\n three\n four\n",
    }
    with pytest.raises(files.EditRefused, match="does not occur"):
        files.plan_edit(workspace, "a.txt", "five", "5", sha(TEXT), MAX_BYTES)
    with pytest.raises(files.EditRefused, match="occurs 3 times"):
        files.plan_edit(workspace, "a.txt", "o", "0", sha(TEXT), MAX_BYTES)
    with pytest.raises(files.FileConflict, match="changed since it was read"):
        files.plan_edit(workspace, "a.txt", "two", "2", sha("other"), MAX_BYTES)
    assert (workspace.root / "a.txt").read_text() == TEXT, "planning writes nothing"


def test_plan_write_of_a_new_file_refuses_an_existing_one(workspace: Workspace) -> None:
    change = files.plan_write(workspace, "d/new.txt", "hi\n", files.NEW_FILE, MAX_BYTES)
    assert change.diff == "--- /dev/null\n+++ b/d/new.txt\n@@ -0,0 +1 @@\n+hi\n"
    with pytest.raises(files.FileConflict, match="already exists"):
        files.plan_write(workspace, "a.txt", "x", files.NEW_FILE, MAX_BYTES)


async def test_apply_checks_the_sha_under_the_lock_and_renames_atomically(
    workspace: Workspace,
) -> None:
    locks = LocalLocks()
    path = workspace.root / "a.txt"
    os.chmod(path, 0o640)
    change = files.plan_edit(workspace, "a.txt", "two", "2", sha(TEXT), MAX_BYTES)
    inode = path.stat().st_ino
    result = await files.apply_change(workspace, change, locks, "run r1", 1.0, MAX_BYTES)
    assert result == {"path": "a.txt", "sha256": sha(change.new_text), "bytes": 17}
    assert path.read_text() == change.new_text
    assert path.stat().st_ino != inode, "replaced by rename, not rewritten in place"
    assert path.stat().st_mode & 0o777 == 0o640
    assert sorted(p.name for p in workspace.root.iterdir()) == ["a.txt"], "no temp file left"
    assert len(locks) == 0
    with pytest.raises(files.FileConflict):
        await files.apply_change(workspace, change, locks, "run r1", 1.0, MAX_BYTES)
    assert path.read_text() == change.new_text and len(locks) == 0


async def test_apply_waits_for_the_lock_and_times_out_cleanly(workspace: Workspace) -> None:
    locks = LocalLocks()
    change = files.plan_edit(workspace, "a.txt", "two", "2", sha(TEXT), MAX_BYTES)
    held = str(workspace.root / "a.txt")
    async with locks.hold(held, "someone", 1.0):
        with pytest.raises(LockTimeout):
            await files.apply_change(workspace, change, locks, "run r1", 0.05, MAX_BYTES)
    assert (workspace.root / "a.txt").read_text() == TEXT
    async with asyncio.timeout(5):
        await files.apply_change(workspace, change, locks, "run r1", 1.0, MAX_BYTES)
    assert (workspace.root / "a.txt").read_text() == change.new_text


class WaitedFor(LocalLocks):
    """Local locks that say when a second party starts waiting."""

    def __init__(self) -> None:
        super().__init__()
        self.waiting = asyncio.Event()
        self._calls = 0

    @contextlib.asynccontextmanager
    async def hold(self, path: str, owner: str, timeout_s: float) -> AsyncIterator[None]:
        self._calls += 1
        if self._calls > 1:
            self.waiting.set()
        async with super().hold(path, owner, timeout_s):
            yield


@pytest.mark.parametrize("swap", ["directory", "file"])
async def test_a_symlink_swapped_in_while_waiting_for_the_lock_is_not_followed(
    workspace: Workspace, tmp_path: Path, swap: str
) -> None:
    """The path is checked when the change is planned; by the time the lock is free a
    directory (or the file itself) may have become a link out of the root."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "a.txt").write_text(TEXT)
    sub = workspace.root / "sub"
    sub.mkdir()
    (sub / "a.txt").write_text(TEXT)
    change = files.plan_edit(workspace, "sub/a.txt", "two", "2", sha(TEXT), MAX_BYTES)
    locks = WaitedFor()
    async with locks.hold(str(sub / "a.txt"), "someone", 1.0):
        applying = asyncio.create_task(
            files.apply_change(workspace, change, locks, "run r1", 5.0, MAX_BYTES)
        )
        async with asyncio.timeout(5):
            await locks.waiting.wait()  # the write is queued behind the holder
        if swap == "directory":
            (sub / "a.txt").unlink()
            sub.rmdir()
            sub.symlink_to(outside, target_is_directory=True)
        else:
            (sub / "a.txt").unlink()
            (sub / "a.txt").symlink_to(outside / "a.txt")
    with pytest.raises((PathRefused, files.FileConflict)):
        async with asyncio.timeout(5):
            await applying
    assert (outside / "a.txt").read_text() == TEXT, "nothing written outside the root"
    assert sorted(p.name for p in outside.iterdir()) == ["a.txt"]
