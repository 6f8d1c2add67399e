"""The workspace tools an agent gets: ``repo_map``, ``search``, ``recall_searches``,
``read_file``, and ``write_file`` / ``edit_file`` (which need a person's approval).

A change is planned (and its unified diff shown in the approval's ``details``) without
any lock; only once approved is it applied, under the file's lock, after checking the
file still has the ``sha256`` the agent read (else ``conflict``). Expected failures reach
the model as ``{"error": code, "message"}`` and the run goes on.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from pydantic_ai import RunContext, Tool
from pydantic_ai.exceptions import ApprovalRequired

from tether.agents.pydantic_ai import ToolDeps, ToolError, approved_by_person, tether_tool
from tether.workspace.files import EditRefused, FileConflict, PlannedChange
from tether.workspace.locks import LockTimeout
from tether.workspace.paths import PathRefused, Workspace, WorkspaceMissing
from tether.workspace.service import WorkspaceService

MAX_SEARCH_RESULTS = 50
RECALL_ENTRIES = 10
EXPECTED = (PathRefused, WorkspaceMissing, FileConflict, EditRefused, LockTimeout)


@contextlib.contextmanager
def _expected_errors() -> Iterator[None]:
    try:
        yield
    except EXPECTED as exc:
        raise ToolError(exc.code, str(exc)) from exc


def _service(ctx: RunContext[ToolDeps]) -> WorkspaceService:
    if ctx.deps.workspace is None:
        raise ToolError("unavailable", "workspace tools are not enabled on this server")
    return ctx.deps.workspace


def _bound(ctx: RunContext[ToolDeps]) -> tuple[WorkspaceService, Workspace]:
    service = _service(ctx)
    with _expected_errors():
        return service, service.bind(ctx.deps.run.metadata)


@tether_tool
async def repo_map(ctx: RunContext[ToolDeps], under: str = "") -> dict[str, Any]:
    """The workspace's file tree with each source file's top-level symbols.

    Args:
        under: only files under this directory (relative to the workspace); all if empty.
    """
    service, workspace = _bound(ctx)
    with _expected_errors():
        return await service.repo_map(workspace, under)


@tether_tool
async def search(ctx: RunContext[ToolDeps], query: str, limit: int = 10) -> dict[str, Any]:
    """Ranked code search (identifiers, words and exact text) over the workspace.

    Args:
        query: a symbol name, words, or an exact snippet.
        limit: how many results (1..50).
    """
    service, workspace = _bound(ctx)
    limit = max(1, min(MAX_SEARCH_RESULTS, limit))
    with _expected_errors():
        return await service.search(workspace, ctx.deps.run.session_id, query, limit)


@tether_tool
async def recall_searches(ctx: RunContext[ToolDeps]) -> dict[str, Any]:
    """This session's earlier searches and their results, newest first."""
    service = _service(ctx)
    return {"searches": await service.recall(ctx.deps.run.session_id, RECALL_ENTRIES)}


@tether_tool
async def read_file(
    ctx: RunContext[ToolDeps], path: str, start_line: int | None = None, end_line: int | None = None
) -> dict[str, Any]:
    """Read a file (optionally lines start_line..end_line, 1-based). Returns its content and
    the sha256 of the whole file, which write_file and edit_file need.

    Args:
        path: relative to the workspace.
        start_line: first line to return.
        end_line: last line to return.
    """
    service, workspace = _bound(ctx)
    with _expected_errors():
        return await service.read(workspace, path, start_line, end_line)


@tether_tool
async def _refused(ctx: RunContext[ToolDeps], path: str, code: str, message: str) -> dict[str, Any]:
    raise ToolError(code, message)


async def _plan_or_apply(ctx: RunContext[ToolDeps], path: str, plan: Any) -> dict[str, Any]:
    """Unapproved: plan the change and ask (details = path + diff). Approved: apply it."""
    service, workspace = _bound(ctx)
    try:
        change: PlannedChange = await plan(service, workspace)
    except EXPECTED as exc:
        return await _refused(ctx, path=path, code=exc.code, message=str(exc))
    if not approved_by_person(ctx):
        raise ApprovalRequired(
            metadata={
                "prompt": f"Apply this change to {change.path}?",
                "details": change.details(),
            }
        )
    write = _writer(service, workspace, change, f"run {ctx.deps.run.run_id}")
    result: dict[str, Any] = await write(
        ctx, path=change.path, sha256=change.expected_sha256, diff=change.diff
    )
    return result


def _writer(
    service: WorkspaceService, workspace: Workspace, change: PlannedChange, owner: str
) -> Any:
    """The approved write as a logged tool step (``tool.started`` args: path, sha256, diff)."""

    @tether_tool
    async def write(ctx: RunContext[ToolDeps], path: str, sha256: str, diff: str) -> dict[str, Any]:
        with _expected_errors():
            return await service.apply(workspace, change, owner)

    return write


async def write_file(
    ctx: RunContext[ToolDeps], path: str, content: str, sha256: str
) -> dict[str, Any]:
    """Replace a file's whole content (needs a person's approval). Pass the sha256 that
    read_file returned, or "" to create a file that does not exist yet.

    Args:
        path: relative to the workspace.
        content: the complete new content.
        sha256: the sha256 read_file returned for this file ("" for a new file).
    """

    async def plan(service: WorkspaceService, workspace: Workspace) -> PlannedChange:
        return await service.plan_write(workspace, path, content, sha256)

    return await _plan_or_apply(ctx, path, plan)


async def edit_file(
    ctx: RunContext[ToolDeps], path: str, old: str, new: str, sha256: str
) -> dict[str, Any]:
    """Replace one exact snippet of a file (needs a person's approval). ``old`` must occur
    exactly once. Pass the sha256 that read_file returned.

    Args:
        path: relative to the workspace.
        old: the exact text to replace.
        new: the replacement.
        sha256: the sha256 read_file returned for this file.
    """

    async def plan(service: WorkspaceService, workspace: Workspace) -> PlannedChange:
        return await service.plan_edit(workspace, path, old, new, sha256)

    return await _plan_or_apply(ctx, path, plan)


def workspace_tools() -> list[Tool[ToolDeps]]:
    return [
        Tool(repo_map, takes_ctx=True),
        Tool(search, takes_ctx=True),
        Tool(recall_searches, takes_ctx=True),
        Tool(read_file, takes_ctx=True),
        Tool(write_file, takes_ctx=True),
        Tool(edit_file, takes_ctx=True),
    ]
