"""Noisy neighbour: does a flooding user delay another user's stream?

    .venv/bin/python -m bench.noisy

A ``tether serve`` process (SQLite in a temp dir, default rate limits) per phase; the
flooder runs in a process of its own. Bob runs ``/stream 10`` RUNS times
and we time, per run, the first text delta and ``run.completed`` after his send. Then the
same while Alice floods from FLOOD_SOCKETS sockets as fast as they take frames: pings only
(the cost of refusing frames), then messages and pings (her admitted runs, within her
quotas, also compete for the same process). Prints medians, p95s and flood/baseline
ratios; near 1.0 means the limits keep Alice's flood from starving Bob.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import websockets

from tether.store.sql.migrate import upgrade

RUNS = 10  # within Bob's own run-start burst, so only Alice's flood differs
FLOOD_SOCKETS = 4
DEADLINE_S = 60
FLOOD_S = 8.0
WARMUP_S = 1.0
TOKENS = "tok-alice-123=alice,tok-bob-4567=bob"


@contextlib.asynccontextmanager
async def serving(store_url: str) -> AsyncIterator[str]:
    """``tether serve`` in its own process, as deployed (the bench's clients stay out of
    its event loop)."""
    env = {
        **os.environ,
        "TETHER_STORE_URL": store_url,
        "TETHER_AUTH": "token",
        "TETHER_API_TOKENS": TOKENS,
        "TETHER_PORT": "0",
        "TETHER_LOG_LEVEL": "ERROR",
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tether.cli", "serve", env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    assert proc.stdout is not None
    line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
    port = int(line.rsplit(":", 1)[1].strip().rstrip("/"))
    try:
        yield f"ws://127.0.0.1:{port}/v1/ws"
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 15)


async def attach(url: str, token: str) -> Any:
    ws = await websockets.connect(url, max_size=None)
    await ws.send(json.dumps({"type": "hello", "token": token}))
    await ws.recv()
    await ws.recv()
    return ws


async def victim(url: str) -> tuple[list[float], list[float]]:
    """Bob's (first delta, completed) latencies in seconds, one pair per run."""
    ws = await attach(url, "tok-bob-4567")
    first_s, done_s = [], []
    async with asyncio.timeout(DEADLINE_S):
        for i in range(RUNS):
            started = time.perf_counter()
            await ws.send(json.dumps({"type": "message", "id": f"b{i}", "content": "/stream 10"}))
            first = None
            while True:
                frame = json.loads(await ws.recv())
                if frame.get("event") == "text.delta" and first is None:
                    first = time.perf_counter() - started
                if frame.get("event") == "run.completed":
                    break
            first_s.append(first or 0.0)
            done_s.append(time.perf_counter() - started)
    await ws.close()
    return first_s, done_s


async def flooder(url: str, stop: asyncio.Event, answers: Counter[str], messages: bool) -> None:
    ws = await attach(url, "tok-alice-123")

    async def drain() -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            async for text in ws:
                frame = json.loads(text)
                answers[frame.get("code") or frame["type"]] += 1

    reader = asyncio.create_task(drain())
    i = 0
    with contextlib.suppress(websockets.ConnectionClosed):
        while not stop.is_set():
            i += 1
            kind = {"type": "message", "id": f"a{id(ws)}-{i}", "content": "/stream 50"}
            await ws.send(json.dumps(kind if messages and i % 2 else {"type": "ping", "t": i}))
            await asyncio.sleep(0)
    await ws.close()
    reader.cancel()
    await asyncio.gather(reader, return_exceptions=True)


def summary(label: str, values: list[float]) -> str:
    p95 = statistics.quantiles(values, n=20)[18]
    return f"{label}: median {statistics.median(values) * 1000:6.1f} ms  p95 {p95 * 1000:6.1f} ms"


async def flood(url: str, messages: bool, seconds: float) -> None:
    """The flooding user, run in a process of its own (``--flood``)."""
    stop, answers = asyncio.Event(), Counter[str]()
    floods = [
        asyncio.create_task(flooder(url, stop, answers, messages)) for _ in range(FLOOD_SOCKETS)
    ]
    await asyncio.sleep(seconds)
    stop.set()
    await asyncio.gather(*floods, return_exceptions=True)
    print(json.dumps(dict(answers.most_common())))


async def flooded(store_url: str, messages: bool) -> tuple[list[float], list[float]]:
    async with serving(store_url) as url:
        mode = "messages" if messages else "pings"
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.noisy", "--flood", url, mode,
            stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        await asyncio.sleep(WARMUP_S)
        result = await victim(url)
        out, _ = await asyncio.wait_for(proc.communicate(), DEADLINE_S)
    print(f"  flooder answers: {out.decode().strip()}")
    return result


async def measure(store_url: str) -> None:
    async with serving(store_url) as url:
        base_first, base_done = await victim(url)
    print(summary("baseline       first delta", base_first))
    print(summary("baseline       completed  ", base_done))
    for label, messages in (("ping flood", False), ("message flood", True)):
        print(f"{label}:")
        first, done = await flooded(store_url, messages)
        print(summary(f"{label:14} first delta", first))
        print(summary(f"{label:14} completed  ", done))
        ratio_first = statistics.median(first) / statistics.median(base_first)
        ratio_done = statistics.median(done) / statistics.median(base_done)
        print(f"  ratio (median, flooded/baseline): first delta {ratio_first:4.2f}x, "
              f"completed {ratio_done:4.2f}x")  # fmt: skip


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--flood":
        asyncio.run(flood(sys.argv[2], sys.argv[3] == "messages", FLOOD_S))
        return
    print(f"bob: {RUNS} runs of /stream 10; alice floods from {FLOOD_SOCKETS} sockets")
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite+aiosqlite:///{folder}/noisy.db"
        upgrade(url)
        asyncio.run(measure(url))


if __name__ == "__main__":
    main()
