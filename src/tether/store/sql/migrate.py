"""Apply Alembic migrations programmatically (``tether migrate``, ``make run``, tests)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

import tether


def migrations_dir() -> Path:
    """The migration scripts: inside the installed wheel, else the source tree's ``migrations/``."""
    packaged = Path(tether.__file__).parent / "migrations"
    if (packaged / "env.py").is_file():
        return packaged
    source = Path(tether.__file__).resolve().parents[2] / "migrations"
    if (source / "env.py").is_file():
        return source
    raise FileNotFoundError("tether's migrations are missing from this installation")


def ensure_sqlite_dir(url: str) -> None:
    """Create the folder of a file-backed SQLite URL so a first run just works."""
    prefix = "sqlite+aiosqlite:///"
    if url.startswith(prefix) and ":memory:" not in url:
        Path(url.removeprefix(prefix).split("?", 1)[0]).parent.mkdir(parents=True, exist_ok=True)


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the database at ``url`` to ``revision`` (blocking; async code runs it in a thread)."""
    ensure_sqlite_dir(url)
    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    config.attributes["url"] = url
    command.upgrade(config, revision)
