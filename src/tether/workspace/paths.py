"""Workspace roots and path resolution: nothing resolves outside the root.

A path is refused when it is absolute, has a ``..`` part, or resolves (through symlinks)
outside the root. Resolution never follows a symlink loop forever: the OS and
``os.path.realpath`` stop at the first repeat, and such a path is refused.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath

MAX_PATH_CHARS = 4096


class PathRefused(ValueError):
    """The path is not inside the workspace (or cannot be resolved safely)."""

    code = "invalid"


class WorkspaceMissing(LookupError):
    """The session has no workspace bound, or its directory is gone."""

    code = "not_found"


def _parts(relative: str) -> tuple[str, ...]:
    if len(relative) > MAX_PATH_CHARS:
        raise PathRefused(f"path longer than {MAX_PATH_CHARS} characters")
    if "\x00" in relative:
        raise PathRefused("path contains a NUL byte")
    text = relative.replace("\\", "/")
    if PurePosixPath(text).is_absolute() or PureWindowsPath(relative).drive:
        raise PathRefused(f"absolute paths are refused: {relative!r}")
    parts = tuple(p for p in PurePosixPath(text).parts if p not in ("", "."))
    if ".." in parts:
        raise PathRefused(f"'..' is refused: {relative!r}")
    return parts


def resolve_under(root: Path, relative: str) -> Path:
    """``relative`` joined to ``root`` with every symlink resolved; refused if it escapes.

    ``root`` must already be resolved. Symlink loops end in ``PathRefused``.
    """
    candidate = root.joinpath(*_parts(relative))
    try:
        resolved = Path(os.path.realpath(candidate, strict=False))
    except (OSError, RuntimeError) as exc:
        raise PathRefused(f"cannot resolve {relative!r}: {exc}") from None
    if resolved != root and not resolved.is_relative_to(root):
        raise PathRefused(f"{relative!r} resolves outside the workspace")
    # realpath leaves a symlink in place only when it cannot finish resolving it: a loop.
    for part in (resolved, *resolved.parents):
        if part == root:
            break
        if part.is_symlink():
            raise PathRefused(f"{relative!r} goes through a symlink loop")
    return resolved


@dataclass(frozen=True, slots=True)
class Workspace:
    """One bound workspace: ``name`` relative to the workspace root, ``root`` resolved."""

    name: str
    root: Path

    def resolve(self, relative: str) -> Path:
        return resolve_under(self.root, relative)

    def relative(self, path: Path) -> str:
        """``path`` (resolved, inside the root) as a POSIX path relative to the root."""
        return path.relative_to(self.root).as_posix() if path != self.root else ""

    def qualified(self, relative: str) -> str:
        """A path relative to the workspace *root setting*: unique across workspaces."""
        return f"{self.name}/{relative}" if self.name else relative


def workspaces_root(setting: str) -> Path:
    return Path(os.path.realpath(Path(setting).expanduser()))


def open_workspace(root_setting: str, name: str) -> Workspace:
    """The workspace ``name`` (a directory under ``root_setting``); ``PathRefused`` if it
    escapes, ``WorkspaceMissing`` if it is not an existing directory."""
    if not isinstance(name, str):
        raise PathRefused("metadata.workspace must be a string")
    base = workspaces_root(root_setting)
    resolved = resolve_under(base, name)
    if not resolved.is_dir():
        raise WorkspaceMissing(f"workspace {name!r} is not a directory under the workspace root")
    rel = resolved.relative_to(base).as_posix()
    return Workspace("" if rel == "." else rel, resolved)
