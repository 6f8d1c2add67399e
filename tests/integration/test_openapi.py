"""schemathesis against the served ``/openapi.json`` of a real server: no 5xx, and every
response (status, content type, headers, body) matches what the document promises."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.generation.modes import GenerationMode
from schemathesis.openapi.loaders import from_url
from schemathesis.specs.openapi.checks import positive_data_acceptance

from tests.harness import make_settings, serve_in_thread
from tests.integration.test_rest import ALICE
from tether.store.sql.migrate import upgrade

TOKENS = "tok-alice-123=alice,tok-bob-4567=bob"
EXAMPLES_PER_OPERATION = 25
# Rules a static schema cannot state (an agent name must be registered; metadata has a
# byte budget; ``respond`` needs ``approved`` or ``answer`` by the interrupt's kind) give
# a documented 413/422 problem to schema-valid input: that is not a broken promise.
SEMANTIC = [positive_data_acceptance]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    path: Path = tmp_path_factory.mktemp("openapi") / "tether.db"
    url = f"sqlite+aiosqlite:///{path}"
    upgrade(url)
    config = make_settings(url, auth="token", api_tokens=TOKENS)
    with serve_in_thread(config) as running:
        with httpx.Client(base_url=running.http, timeout=10) as http:
            for i in range(3):
                http.post("/v1/sessions", json={"title": f"s{i}"}, headers=ALICE)
        yield running.http


def _check_operation(operation: Any, served: str, mode: GenerationMode) -> None:
    @given(case=operation.as_strategy(mode))
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )
    def run(case: Any) -> None:
        case.call_and_validate(
            base_url=served, headers=dict(ALICE), timeout=10, excluded_checks=SEMANTIC
        )

    run()


def test_every_operation_keeps_its_documented_promises(served: str) -> None:
    schema = from_url(f"{served}/openapi.json")
    spec = httpx.get(f"{served}/openapi.json", timeout=10).json()
    checked, negative = [], []
    for result in schema.get_all_operations():
        operation = result.ok()
        raw = spec["paths"][operation.path][operation.method.lower()]
        has_input = bool(raw.get("parameters") or raw.get("requestBody"))
        _check_operation(operation, served, GenerationMode.POSITIVE)
        if has_input:
            # Only path strings (any text is a valid id): nothing schema-invalid to send.
            with contextlib.suppress(Unsatisfiable):
                _check_operation(operation, served, GenerationMode.NEGATIVE)
                negative.append(operation.label)
        checked.append(operation.label)
    assert len(checked) >= 15, checked
    assert len(negative) >= 8, negative


def test_errors_are_documented_as_problem_documents(served: str) -> None:
    spec = httpx.get(f"{served}/openapi.json", timeout=10).json()
    responses = spec["paths"]["/v1/sessions/{session_id}"]["patch"]["responses"]
    for status in ("401", "404", "412", "422", "429"):
        assert "application/problem+json" in responses[status]["content"], status
    assert "HTTPValidationError" not in spec["components"]["schemas"]
    assert "/v1/usage" in spec["paths"]
