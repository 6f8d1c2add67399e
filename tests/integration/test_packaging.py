"""The wheel carries the migrations: ``tether migrate`` works from an installed wheel."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def run(args: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=180, check=True, **kwargs)  # type: ignore[call-overload,no-any-return]


def test_wheel_ships_migrations_and_cli_migrates(tmp_path: Path) -> None:
    run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path / "dist"),
            str(ROOT),
        ]
    )
    [wheel] = (tmp_path / "dist").glob("tether-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "tether/migrations/env.py" in names
    assert "tether/migrations/versions/0001_initial.py" in names
    assert "tether/web/index.html" in names
    page_files = {f"tether/web/{p.name}" for p in (ROOT / "src/tether/web").iterdir()}
    assert page_files <= set(names)  # every module the page imports ships
    target = tmp_path / "site"
    run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "-q",
            "--target",
            str(target),
            str(wheel),
        ]
    )
    db = tmp_path / "data" / "fresh.db"
    env = {**os.environ, "PYTHONPATH": str(target), "TETHER_STORE_URL": f"sqlite+aiosqlite:///{db}"}
    where = run(
        [
            sys.executable,
            "-c",
            "import tether, tether.store.sql.migrate as m; "
            "print(tether.__file__); print(m.migrations_dir())",
        ],
        env=env,
        cwd=tmp_path,
    )
    module_file, migrations = where.stdout.split()
    assert module_file.startswith(str(target)), "the wheel, not the source tree, is imported"
    assert migrations.startswith(str(target))
    run([sys.executable, "-m", "tether.cli", "migrate"], env=env, cwd=tmp_path)
    tables = {row[0] for row in sqlite3.connect(db).execute("select name from sqlite_master")}
    assert {"sessions", "events", "runs", "commands", "alembic_version"} <= tables
    run([sys.executable, "-m", "tether.cli", "migrate"], env=env, cwd=tmp_path)  # idempotent
