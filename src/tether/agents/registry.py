"""Named agent factories: built-ins plus ``TETHER_AGENTS`` entries (``[name=]module:attr``)."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from tether.agents.runner import Runner

if TYPE_CHECKING:
    from tether.agents.assistant import ModelSettings
    from tether.workspace.service import WorkspaceService

AgentFactory = Callable[[], Runner]


class UnknownAgent(LookupError):
    pass


class AgentRegistry:
    def __init__(self) -> None:
        self._factories: dict[str, AgentFactory] = {}
        self._runners: dict[str, Runner] = {}

    def register(self, name: str, factory: AgentFactory) -> None:
        if not name or len(name) > 64:
            raise ValueError(f"agent name must be 1..64 characters: {name!r}")
        self._factories[name] = factory
        self._runners.pop(name, None)

    def names(self) -> list[str]:
        return sorted(self._factories)

    def __contains__(self, name: object) -> bool:
        return name in self._factories

    def runner(self, name: str) -> Runner:
        """The agent's runner, built once on first use (runners are stateless per run)."""
        if name not in self._factories:
            raise UnknownAgent(f"no agent named {name!r}; known: {', '.join(self.names())}")
        if name not in self._runners:
            self._runners[name] = self._factories[name]()
        return self._runners[name]

    def load_entries(self, entries: Iterable[str]) -> None:
        for entry in entries:
            name, _, target = entry.rpartition("=")
            module_name, sep, attr = target.partition(":")
            if not sep or not module_name or not attr:
                raise ValueError(f"TETHER_AGENTS entry must be [name=]module:attr, got {entry!r}")
            factory = getattr(importlib.import_module(module_name), attr)
            self.register(name or attr, factory)


def default_registry(
    entries: Iterable[str] = (),
    model: ModelSettings | None = None,
    workspace: WorkspaceService | None = None,
) -> AgentRegistry:
    """``demo`` and ``assistant`` (its model checked now, so bad settings fail at start),
    plus ``entries``."""
    from tether.agents.assistant import ModelSettings, assistant_runner, build_model
    from tether.agents.demo import demo_runner

    config = model or ModelSettings("")
    build_model(config)
    registry = AgentRegistry()
    registry.register("demo", lambda: demo_runner(workspace))
    registry.register("assistant", lambda: assistant_runner(config, workspace))
    registry.load_entries(entries)
    return registry
