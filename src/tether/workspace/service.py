"""What the workspace tools call: one object per server, shared by every run.

It binds a session to its workspace (``metadata.workspace``, under the workspace root),
serves the repo map and search from the shared ``IndexCache``, keeps each session's
search context in the store (so it survives reconnects and restarts), and applies file
changes under the file-lock manager, invalidating the search context they touch.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tether.store.contract import SearchContextRecord, Store, StoreTx, now_ms
from tether.workspace import files
from tether.workspace.locks import FileLocks
from tether.workspace.paths import Workspace, WorkspaceMissing, open_workspace
from tether.workspace.repo_map import IndexCache


@dataclass(frozen=True, slots=True)
class WorkspaceConfig:
    root: str
    max_file_bytes: int = 1_048_576
    max_read_chars: int = 100_000
    search_context_entries: int = 20
    lock_timeout_s: float = 10.0


def query_key(workspace: Workspace, query: str, limit: int) -> str:
    return hashlib.sha256(f"{workspace.name}\0{limit}\0{query.strip()}".encode()).hexdigest()


class WorkspaceService:
    def __init__(
        self,
        config: WorkspaceConfig,
        store: Store,
        cache: IndexCache,
        locks: FileLocks,
        on_context_lookup: Callable[[bool], None] | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.cache = cache
        self.locks = locks
        self._on_context_lookup = on_context_lookup

    def bind(self, metadata: dict[str, Any]) -> Workspace:
        """The session's workspace; ``WorkspaceMissing`` when it has none."""
        name = metadata.get("workspace")
        if name is None:
            raise WorkspaceMissing(
                "this session has no workspace: create it with metadata.workspace set to a "
                "directory under the workspace root"
            )
        return open_workspace(self.config.root, name)

    async def repo_map(self, workspace: Workspace, under: str = "") -> dict[str, Any]:
        if under:
            workspace.resolve(under)
        indexed = await self.cache.get(workspace)
        return {
            "files": len(indexed.map.files),
            "truncated": indexed.map.truncated,
            "map": indexed.map.render(under),
        }

    async def search(
        self, workspace: Workspace, session_id: str, query: str, limit: int = 10
    ) -> dict[str, Any]:
        """Ranked results; the same query again is served from the session's context."""
        key = query_key(workspace, query, limit)
        seen = await self.cache.stamp(workspace)
        known = await self.store.get_search_context(session_id, key)
        # Served again only while the workspace is exactly as it was searched: a new file
        # may match better, and an empty result stays empty only until one appears.
        hit = known is not None and known.results.get("fingerprint") == seen.fingerprint
        if self._on_context_lookup is not None:
            self._on_context_lookup(hit)
        if known is not None and hit:
            return {"query": query, "cached": True, "results": known.results["results"]}
        indexed = await self.cache.get(workspace, seen)
        results = [hit.to_json() for hit in indexed.search.search(query, limit)]
        paths = sorted({str(r["path"]) for r in results})
        record = SearchContextRecord(
            session_id,
            key,
            query,
            [workspace.qualified(p) for p in paths],
            {"workspace": workspace.name, "results": results, "fingerprint": seen.fingerprint},
            now_ms(),
        )
        keep = self.config.search_context_entries
        await self.store.write(lambda tx: tx.put_search_context(record, keep))
        return {"query": query, "cached": False, "results": results}

    async def recall(self, session_id: str, limit: int) -> list[dict[str, Any]]:
        """The session's remembered searches, newest first."""
        records = await self.store.list_search_context(session_id, limit)
        return [{"query": r.query, "results": r.results.get("results", [])} for r in records]

    async def read(
        self, workspace: Workspace, path: str, start_line: int | None, end_line: int | None
    ) -> dict[str, Any]:
        c = self.config
        return await asyncio.to_thread(
            files.read_file, workspace, path, c.max_file_bytes, c.max_read_chars,
            start_line, end_line,
        )  # fmt: skip

    async def plan_write(
        self, workspace: Workspace, path: str, content: str, sha256: str
    ) -> files.PlannedChange:
        return await asyncio.to_thread(
            files.plan_write, workspace, path, content, sha256, self.config.max_file_bytes
        )

    async def plan_edit(
        self, workspace: Workspace, path: str, old: str, new: str, sha256: str
    ) -> files.PlannedChange:
        return await asyncio.to_thread(
            files.plan_edit, workspace, path, old, new, sha256, self.config.max_file_bytes
        )

    async def apply(
        self, workspace: Workspace, change: files.PlannedChange, owner: str
    ) -> dict[str, Any]:
        """Write ``change`` under the file's lock, then forget searches that touched it."""
        c = self.config
        result = await files.apply_change(
            workspace, change, self.locks, owner, c.lock_timeout_s, c.max_file_bytes
        )
        touched = workspace.qualified(change.path)

        async def forget(tx: StoreTx) -> int:
            return await tx.invalidate_search_context(touched)

        result["search_entries_invalidated"] = await self.store.write(forget)
        return result
