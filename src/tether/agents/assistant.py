"""The ``assistant`` agent: a real model (any OpenAI-compatible endpoint) with the
workspace tools, or, with no model configured, the scripted demo model.

``TETHER_MODEL`` is ``provider:model``:
  ``openai:gpt-4o-mini``          OpenAI (``TETHER_MODEL_API_KEY``; base URL optional)
  ``ollama:qwen2.5-coder``        Ollama's OpenAI-compatible API (default base URL
                                  ``http://127.0.0.1:11434/v1``)
  ``openai-compatible:NAME``      any other endpoint (vLLM, llama.cpp, OpenRouter, ...);
                                  ``TETHER_MODEL_BASE_URL`` required
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic_ai import Agent, DeferredToolRequests, Tool
from pydantic_ai.models import Model

from tether.agents.demo import ask_user, demo_model, demo_tools
from tether.agents.pydantic_ai import PydanticAIRunner, ToolDeps
from tether.agents.workspace_tools import workspace_tools
from tether.workspace.service import WorkspaceService

OLLAMA_BASE_URL = "http://127.0.0.1:11434/v1"
PROVIDERS = ("openai", "ollama", "openai-compatible")
INSTRUCTIONS = """You are tether's coding assistant, working in one code repository (the
session's workspace). Use repo_map to see the layout, search to find code, and read_file
before changing anything. To change a file, call edit_file (one exact snippet) or
write_file with the sha256 that read_file returned; a person approves every change and
sees its diff. If a tool answers with an error such as "conflict", read the file again
before retrying. recall_searches lists this session's earlier searches. Use ask_user when
you need a decision from the person. Be brief."""


@dataclass(frozen=True, slots=True)
class ModelSettings:
    model: str
    base_url: str = ""
    api_key: str = ""


def build_model(config: ModelSettings) -> Model | None:
    """The configured model, or ``None`` when ``TETHER_MODEL`` is empty.

    Raises ``ValueError`` for an unknown provider or a missing base URL or key, so a
    misconfigured server refuses to start instead of failing every run.
    """
    spec = config.model.strip()
    if not spec:
        return None
    provider, sep, name = spec.partition(":")
    if not sep or not name or provider not in PROVIDERS:
        raise ValueError(
            f"TETHER_MODEL must be provider:model with provider one of {PROVIDERS}, got {spec!r}"
        )
    from pydantic_ai.models.openai import OpenAIChatModel
    from pydantic_ai.providers.openai import OpenAIProvider
    from pydantic_ai.providers.openai_compatible import OpenAICompatibleProvider

    if provider == "openai":
        if not config.api_key:
            raise ValueError("TETHER_MODEL=openai:… needs TETHER_MODEL_API_KEY")
        openai = OpenAIProvider(base_url=config.base_url or None, api_key=config.api_key)
        return OpenAIChatModel(name, provider=openai)
    base_url = config.base_url or (OLLAMA_BASE_URL if provider == "ollama" else "")
    if not base_url:
        raise ValueError(f"TETHER_MODEL={spec} needs TETHER_MODEL_BASE_URL")
    compatible = OpenAICompatibleProvider(
        provider, base_url=base_url, api_key=config.api_key or "not-needed"
    )
    return OpenAIChatModel(name, provider=compatible)


def assistant_agent(model: Model | None) -> Agent[ToolDeps, str | DeferredToolRequests]:
    """With a model: workspace tools and ``ask_user``. Without: the demo model and tools."""
    tools: list[Tool[ToolDeps]] = [*workspace_tools()]
    if model is None:
        tools.extend(demo_tools())
    else:
        tools.append(Tool(ask_user, takes_ctx=False))
    return Agent(
        model or demo_model(),
        name="assistant",
        deps_type=ToolDeps,
        output_type=[str, DeferredToolRequests],
        instructions=INSTRUCTIONS,
        tools=tools,
    )


def assistant_runner(
    config: ModelSettings, workspace: WorkspaceService | None = None
) -> PydanticAIRunner:
    return PydanticAIRunner(assistant_agent(build_model(config)), workspace)
