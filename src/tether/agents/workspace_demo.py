"""The demo model's workspace scripts: plain-language requests that exercise every
workspace tool, so the ``assistant`` works offline with no model configured.

  ``where is X``              → ``search(X)``, then a summary of the best results
  ``show me the layout``      → ``repo_map()``, then the map
  ``change A to B in F``      → ``read_file(F)``, then ``edit_file(F, A, B, sha256)``
                                (approval with the diff), then what happened
  ``create F with TEXT``      → ``write_file(F, TEXT, "")`` (approval with the diff)
  ``what did I search``       → ``recall_searches()``
Pure functions of the conversation: no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from pydantic_ai.messages import ToolReturnPart

WHERE = re.compile(r"^\s*where\s+is\s+(?P<what>.+?)\s*\??\s*$", re.IGNORECASE)
LAYOUT = re.compile(r"^\s*show\s+me\s+the\s+layout\b", re.IGNORECASE)
CHANGE = re.compile(
    r"^\s*change\s+(?P<old>.+?)\s+to\s+(?P<new>.+?)\s+in\s+(?P<path>\S+?)\s*$",
    re.IGNORECASE | re.DOTALL,
)
CREATE = re.compile(r"^\s*create\s+(?P<path>\S+)\s+with\s+(?P<content>.+)$", re.I | re.DOTALL)
RECALL = re.compile(r"^\s*what\s+did\s+i\s+search", re.IGNORECASE)
QUOTES = "\"'`"
SUMMARY_RESULTS = 5
WORKSPACE_TOOLS = frozenset(
    {"search", "repo_map", "recall_searches", "read_file", "edit_file", "write_file"}
)


@dataclass(frozen=True, slots=True)
class Reply:
    text: str = ""
    tool: str | None = None
    args: dict[str, Any] = field(default_factory=dict)


def _unquote(text: str) -> str:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in QUOTES:
        return text[1:-1]
    return text


def plan_prompt(prompt: str) -> Reply | None:
    """The first step for a workspace request, or ``None`` if ``prompt`` is not one."""
    if found := WHERE.match(prompt):
        return Reply(tool="search", args={"query": _unquote(found["what"])})
    if LAYOUT.match(prompt):
        return Reply(tool="repo_map", args={})
    if found := CHANGE.match(prompt):
        return Reply(tool="read_file", args={"path": _unquote(found["path"])})
    if found := CREATE.match(prompt):
        args = {"path": found["path"], "content": _unquote(found["content"]) + "\n", "sha256": ""}
        return Reply(tool="write_file", args=args)
    if RECALL.match(prompt):
        return Reply(tool="recall_searches", args={})
    return None


def _error(content: Any) -> str | None:
    if isinstance(content, dict) and "error" in content:
        return f"{content['error']}: {content.get('message', '')}"
    return None


def _search_summary(content: dict[str, Any]) -> str:
    results = content.get("results", [])
    if not results:
        return f"Nothing matches {content.get('query')!r}."
    where = "; ".join(
        f"{r['path']}:{r['start_line']}-{r['end_line']}" for r in results[:SUMMARY_RESULTS]
    )
    origin = " (from this session's earlier search)" if content.get("cached") else ""
    return f"Found {len(results)} results for {content.get('query')!r}{origin}: {where}"


def _after_read(prompt: str, content: dict[str, Any]) -> Reply:
    found = CHANGE.match(prompt)
    if found is None:
        return Reply(f"{content['path']} has {content['total_lines']} lines.")
    args = {
        "path": content["path"],
        "old": _unquote(found["old"]),
        "new": _unquote(found["new"]),
        "sha256": content["sha256"],
    }
    return Reply(tool="edit_file", args=args)


def after_tool(prompt: str, part: ToolReturnPart) -> Reply | None:
    """The next step once a workspace tool answered, or ``None`` for other tools."""
    if part.tool_name not in WORKSPACE_TOOLS:
        return None
    raw: Any = part.content
    if part.outcome == "denied":
        return Reply(f"Understood, I did not change anything: {raw}")
    if (error := _error(raw)) is not None:
        return Reply(f"{part.tool_name} failed: {error}")
    content: dict[str, Any] = raw if isinstance(raw, dict) else {}
    if part.tool_name == "search":
        return Reply(_search_summary(content))
    if part.tool_name == "repo_map":
        return Reply(f"The workspace has {content['files']} files:\n{content['map']}")
    if part.tool_name == "recall_searches":
        queries = [entry["query"] for entry in content.get("searches", [])]
        return Reply(f"Earlier searches: {', '.join(queries) or 'none'}.")
    if part.tool_name == "read_file":
        return _after_read(prompt, content)
    return Reply(f"Changed {content['path']} (sha256 {content['sha256'][:12]}…).")
