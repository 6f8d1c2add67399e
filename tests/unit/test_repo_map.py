"""The repo map on a generated repository of 2,000 files in five languages: exact
symbols per language, ignore rules, the cache (hits, fingerprint, both caps, metrics)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tether.metrics import Metrics
from tether.workspace.lru import BoundedLRU
from tether.workspace.paths import Workspace, open_workspace
from tether.workspace.repo_map import IndexCache
from tether.workspace.scan import ScanLimits

FILES_PER_LANGUAGE = 400
Expected = dict[str, list[tuple[str, str]]]


def _python(i: int) -> tuple[str, list[tuple[str, str]]]:
    text = (
        f'"""Module {i}."""\nimport os\n\nLIMIT_{i} = {i}\n\n\n'
        f"class Model{i}:\n    def method(self):\n        return os.sep\n\n\n"
        f"async def fetch_{i}(url):\n    return url\n"
    )
    return text, [("variable", f"LIMIT_{i}"), ("class", f"Model{i}"), ("function", f"fetch_{i}")]


def _javascript(i: int) -> tuple[str, list[tuple[str, str]]]:
    text = (
        f"import x from './x.js';\nexport function render{i}(a) {{ return a; }}\n"
        f"class Widget{i} {{ draw() {{}} }}\nconst count{i} = 3, other{i} = 4;\n"
        f"export default class Page{i} {{}}\nrender{i}(1);\n"
    )
    names = [("function", f"render{i}"), ("class", f"Widget{i}"), ("variable", f"count{i}"),
             ("variable", f"other{i}"), ("class", f"Page{i}")]  # fmt: skip
    return text, names


def _typescript(i: int) -> tuple[str, list[tuple[str, str]]]:
    text = (
        f"export interface Shape{i} {{ area(): number }}\ntype Id{i} = string;\n"
        f"export enum Color{i} {{ Red, Green }}\n"
        f"export function area{i}(s: Shape{i}): number {{ return s.area(); }}\n"
        f"export abstract class Base{i} {{}}\n"
    )
    names = [("interface", f"Shape{i}"), ("type", f"Id{i}"), ("enum", f"Color{i}"),
             ("function", f"area{i}"), ("class", f"Base{i}")]  # fmt: skip
    return text, names


def _go(i: int) -> tuple[str, list[tuple[str, str]]]:
    text = (
        f'package pkg{i}\n\nimport "fmt"\n\ntype Server{i} struct{{ port int }}\n\n'
        f"func (s *Server{i}) Start() error {{ return nil }}\n\n"
        f'func New{i}() *Server{i} {{ fmt.Println("x"); return nil }}\n\n'
        f"const (\n\tMax{i} = 1\n\tMin{i} = 0\n)\n\nvar Default{i} = New{i}()\n"
    )
    names = [("type", f"Server{i}"), ("method", f"Server{i}.Start"), ("function", f"New{i}"),
             ("constant", f"Max{i}"), ("constant", f"Min{i}"),
             ("variable", f"Default{i}")]  # fmt: skip
    return text, names


def _rust(i: int) -> tuple[str, list[tuple[str, str]]]:
    text = (
        f"use std::fmt;\n\npub struct Point{i} {{ x: i32 }}\n\n"
        f"impl Point{i} {{ pub fn new() -> Self {{ Point{i} {{ x: 0 }} }} }}\n\n"
        f"pub trait Draw{i} {{ fn draw(&self); }}\n\n"
        f"impl fmt::Debug for Point{i} {{\n"
        "    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result { Ok(()) }\n}\n\n"
        f"pub fn distance_{i}() -> i32 {{ 0 }}\n\npub const ORIGIN_{i}: i32 = 0;\n"
        f"pub enum Dir{i} {{ Up }}\n"
    )
    names = [("struct", f"Point{i}"), ("impl", f"Point{i}"), ("trait", f"Draw{i}"),
             ("impl", f"fmt::Debug for Point{i}"), ("function", f"distance_{i}"),
             ("constant", f"ORIGIN_{i}"), ("enum", f"Dir{i}")]  # fmt: skip
    return text, names


GENERATORS = {"py": _python, "js": _javascript, "ts": _typescript, "go": _go, "rs": _rust}


def generate(root: Path) -> Expected:
    """2,000 source files (400 per language) plus files that must be ignored."""
    expected: Expected = {}
    for ext, make in GENERATORS.items():
        for i in range(FILES_PER_LANGUAGE):
            relative = f"{ext}/group{i % 20}/file{i}.{ext}"
            text, names = make(i)
            (root / relative).parent.mkdir(parents=True, exist_ok=True)
            (root / relative).write_text(text)
            expected[relative] = names
    ignored = ["node_modules/lib/index.js", ".git/config.py", "build/out.py", "target/x.rs",
               "env/lib/site.py", "generated/api.py", "py/group0/secret.log"]  # fmt: skip
    for relative in ignored:
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_text("def ignored(): pass\n")
    (root / "env" / "pyvenv.cfg").write_text("home = /usr\n")
    (root / ".gitignore").write_text("generated/\n*.log\n!keep.log\n")
    (root / "py" / "group0" / "keep.log").write_text("kept\n")
    (root / "README.md").write_text("# generated\n")
    return expected


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Workspace, Expected]:
    base = tmp_path_factory.mktemp("ws")
    (base / "big").mkdir()
    expected = generate(base / "big")
    return open_workspace(str(base), "big"), expected


def cache(
    entries: int = 4, max_bytes: int = 512 * 1024 * 1024, metrics: Metrics | None = None
) -> IndexCache:
    m = metrics or Metrics()
    return IndexCache(
        entries,
        max_bytes,
        ScanLimits(max_files=50_000),
        on_evict=m.repo_map_evictions.inc,
        on_lookup=lambda hit: m.observe_lookup(m.repo_map_cache, hit),
    )


def sample(metrics: Metrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, labels)
    return value or 0.0


async def test_exact_symbols_for_every_language_on_2000_files(
    repo: tuple[Workspace, Expected],
) -> None:
    workspace, expected = repo
    indexed = await cache().get(workspace)
    paths = [f.path for f in indexed.map.files]
    assert len([p for p in paths if p in expected]) == 2_000
    assert sorted(paths) == sorted([*expected, ".gitignore", "README.md", "py/group0/keep.log"])
    assert indexed.map.symbols() == expected
    for ext in GENERATORS:
        assert (
            indexed.map.symbols()[f"{ext}/group7/file7.{ext}"]
            == expected[f"{ext}/group7/file7.{ext}"]
        )


async def test_the_second_call_is_served_from_the_cache(repo: tuple[Workspace, Expected]) -> None:
    workspace, _ = repo
    metrics = Metrics()
    shared = cache(metrics=metrics)
    first = await shared.get(workspace)
    second = await shared.get(workspace)
    assert second is first
    assert (shared.lru.hits, shared.lru.misses) == (1, 1)
    assert sample(metrics, "tether_repo_map_cache_lookups_total", result="hit") == 1
    assert sample(metrics, "tether_repo_map_cache_lookups_total", result="miss") == 1


async def test_a_change_gives_a_new_fingerprint_and_drops_the_old_entry(tmp_path: Path) -> None:
    (tmp_path / "w").mkdir()
    (tmp_path / "w" / "a.py").write_text("def one(): pass\n")
    workspace = open_workspace(str(tmp_path), "w")
    shared = cache()
    before = await shared.get(workspace)
    (tmp_path / "w" / "a.py").write_text("def one(): pass\ndef two(): pass\n")
    os.utime(tmp_path / "w" / "a.py", ns=(1, 1))  # a different mtime even on coarse clocks
    after = await shared.get(workspace)
    assert after.fingerprint != before.fingerprint
    assert after.map.symbols() == {"a.py": [("function", "one"), ("function", "two")]}
    assert shared.lru.keys() == [(str(workspace.root), after.fingerprint)]


async def test_the_lru_stays_within_both_caps(tmp_path: Path) -> None:
    roots = []
    for index in range(6):
        (tmp_path / f"w{index}").mkdir()
        body = "".join(f"def f{index}_{n}(): pass\n" for n in range(200 * (index + 1)))
        (tmp_path / f"w{index}" / "m.py").write_text(body)
        roots.append(open_workspace(str(tmp_path), f"w{index}"))
    metrics = Metrics()
    probe = cache()
    sizes = [(await probe.get(w)).size_bytes for w in roots]
    max_bytes = sizes[4] + sizes[5] - 1  # the two largest never fit together
    bounded = cache(entries=3, max_bytes=max_bytes, metrics=metrics)
    for workspace in roots:
        await bounded.get(workspace)
        assert len(bounded.lru) <= 3
        assert bounded.lru.total_bytes <= max_bytes
    assert bounded.lru.keys()[-1][0] == str(roots[5].root)
    assert str(roots[4].root) not in {root for root, _ in bounded.lru.keys()}  # noqa: SIM118
    evicted = bounded.lru.evictions
    assert evicted == 6 - len(bounded.lru)
    assert sample(metrics, "tether_repo_map_cache_evictions_total") == evicted


def test_bounded_lru_caps_entries_and_bytes_and_counts_evictions() -> None:
    evictions: list[int] = []
    lru: BoundedLRU[str, bytes] = BoundedLRU(3, 10, len, lambda: evictions.append(1))
    for key in "abc":
        lru.put(key, b"xx")
    assert lru.get("a") == b"xx"  # a is now the most recent
    lru.put("d", b"xx")
    assert lru.keys() == ["c", "a", "d"] and lru.evictions == 1
    lru.put("e", b"xxxxxx")  # 2+2+2+6 > 10: the oldest go until it fits
    assert lru.keys() == ["a", "d", "e"] and lru.total_bytes == 10
    lru.put("f", b"xxxxxxx")  # 10 + 7: a, d and e must all go
    assert lru.keys() == ["f"] and lru.total_bytes == 7
    assert lru.put("huge", b"x" * 11) is False and "huge" not in lru
    assert lru.evictions == len(evictions) == 5


def test_render_cuts_at_max_chars_with_a_note(repo: tuple[Workspace, Expected]) -> None:
    workspace, expected = repo
    from tether.workspace.repo_map import build
    from tether.workspace.scan import stamp

    limits = ScanLimits()
    indexed = build(workspace.root, stamp(workspace.root, limits), limits)
    text = indexed.map.render("rs/group3", max_chars=400)
    assert text.splitlines()[0] == "rs/group3/file103.rs: " + ", ".join(
        f"{kind} {name}" for kind, name in expected["rs/group3/file103.rs"]
    )
    assert text.splitlines()[-1].endswith("more files")
    assert len(text) <= 400 + len(text.splitlines()[-1]) + 1
