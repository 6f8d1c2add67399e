"""Workspace paths: every way out of the root is refused; a symlink loop ends quickly."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tether.workspace.paths import PathRefused, WorkspaceMissing, open_workspace, resolve_under


@pytest.fixture
def root(tmp_path: Path) -> Path:
    base = tmp_path / "root"
    (base / "proj" / "src").mkdir(parents=True)
    (base / "proj" / "src" / "a.py").write_text("x = 1\n")
    (tmp_path / "secret").mkdir()
    (tmp_path / "secret" / "key").write_text("hunter2")
    return base.resolve()


@pytest.mark.parametrize(
    "path",
    ["../secret/key", "src/../../secret", "..", "a/../../..", "..\\secret", "src/..\\..\\x"],
)
def test_dot_dot_is_refused(root: Path, path: str) -> None:
    with pytest.raises(PathRefused, match=r"'\.\.' is refused"):
        resolve_under(root / "proj", path)


@pytest.mark.parametrize("path", ["/etc/passwd", "/", "\\\\server\\share", "C:\\Windows", "C:x"])
def test_absolute_paths_are_refused(root: Path, path: str) -> None:
    with pytest.raises(PathRefused, match="absolute"):
        resolve_under(root / "proj", path)


def test_a_symlink_pointing_out_is_refused(root: Path) -> None:
    proj = root / "proj"
    (proj / "out").symlink_to(root.parent / "secret")
    (proj / "src" / "key").symlink_to(root.parent / "secret" / "key")
    (proj / "abs").symlink_to("/etc")
    for path in ["out", "out/key", "src/key", "abs/passwd"]:
        with pytest.raises(PathRefused, match="outside the workspace"):
            resolve_under(proj, path)


def test_a_symlink_inside_resolves_to_its_target(root: Path) -> None:
    proj = root / "proj"
    (proj / "link").symlink_to(proj / "src")
    assert resolve_under(proj, "link/a.py") == proj / "src" / "a.py"
    assert resolve_under(proj, "./src//a.py") == proj / "src" / "a.py"
    assert resolve_under(proj, "") == proj


def test_a_symlink_loop_is_refused_not_followed_forever(root: Path) -> None:
    proj = root / "proj"
    os.symlink("loop_b", proj / "loop_a")
    os.symlink("loop_a", proj / "loop_b")
    os.symlink(".", proj / "self")  # a directory loop: self/self/self/... is legal
    for path in ["loop_a", "loop_b/file", "loop_a/x/y"]:
        with pytest.raises(PathRefused, match="symlink loop"):
            resolve_under(proj, path)
    assert resolve_under(proj, "/".join(["self"] * 50) + "/src/a.py") == proj / "src" / "a.py"


def test_nul_and_overlong_paths_are_refused(root: Path) -> None:
    with pytest.raises(PathRefused, match="NUL"):
        resolve_under(root, "a\x00b")
    with pytest.raises(PathRefused, match="longer than"):
        resolve_under(root, "a" * 5000)


def test_open_workspace_binds_a_directory_under_the_root(root: Path) -> None:
    workspace = open_workspace(str(root), "proj")
    assert (workspace.name, workspace.root) == ("proj", root / "proj")
    assert workspace.qualified("src/a.py") == "proj/src/a.py"
    with pytest.raises(PathRefused):
        open_workspace(str(root), "../secret")
    with pytest.raises(WorkspaceMissing):
        open_workspace(str(root), "nope")
    with pytest.raises(WorkspaceMissing):
        open_workspace(str(root), "proj/src/a.py")


def test_listing_skips_symlinked_dirs_and_links_pointing_out(root: Path) -> None:
    from tether.workspace.ignore import list_files

    proj = root / "proj"
    os.symlink(".", proj / "self")
    os.symlink("loop_b", proj / "loop_a")
    os.symlink("loop_a", proj / "loop_b")
    (proj / "src" / "inside.py").symlink_to(proj / "src" / "a.py")
    (proj / "src" / "outside").symlink_to(root.parent / "secret" / "key")
    listing = list_files(proj, 100)
    assert listing.files == ("src/a.py", "src/inside.py")
    assert listing.truncated is False
    assert list_files(proj, 1).truncated is True


def test_demo_scripts_recognise_the_workspace_requests() -> None:
    from tether.agents.workspace_demo import plan_prompt

    assert plan_prompt("Where is parse_config?") == plan_prompt("where is `parse_config`")
    step = plan_prompt("where is parse_config?")
    assert step is not None and (step.tool, step.args) == ("search", {"query": "parse_config"})
    layout = plan_prompt("show me the layout please")
    assert layout is not None and layout.tool == "repo_map"
    change = plan_prompt('change "a b" to c in src/x.py')
    assert change is not None and (change.tool, change.args) == ("read_file", {"path": "src/x.py"})
    assert plan_prompt("/stream 5") is None
    assert plan_prompt("hello there") is None
