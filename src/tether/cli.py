"""``tether serve``, ``tether migrate`` and ``tether token create``: the only place that
builds ``Settings()``."""

from __future__ import annotations

import argparse
import asyncio
import socket
import sys

import structlog
import uvicorn

from tether.logging import configure_logging
from tether.settings import Settings
from tether.store.sql.migrate import upgrade

log = structlog.get_logger(__name__)


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto=IPPROTO_TCP: accepted sockets inherit it, and only then does asyncio set
    # TCP_NODELAY on them; without it, frames sent back to back wait ~40 ms (Nagle and
    # delayed ACK).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host.strip("[]"), port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def serve(settings: Settings) -> None:
    """Serve until SIGINT/SIGTERM; prints the URL once the socket is bound (port 0 works)."""
    from tether.app import create_app

    sock = _bind(settings.host, settings.port)
    port = sock.getsockname()[1]
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    config = uvicorn.Config(
        create_app(settings),
        log_config=None,
        access_log=False,
        lifespan="on",
        ws_max_size=settings.max_frame_bytes,
        ws_ping_interval=20,
        ws_ping_timeout=20,
        timeout_graceful_shutdown=int(settings.shutdown_grace_s) + 1,
    )
    server = uvicorn.Server(config)
    sys.stdout.write(f"tether serving at http://{host}:{port}/\n")
    sys.stdout.flush()
    log.info("serving", url=f"http://{host}:{port}/", store=settings.store_url.split(":", 1)[0])
    asyncio.run(server.serve(sockets=[sock]))


def migrate(settings: Settings) -> None:
    upgrade(settings.store_url)
    log.info("migrated", store=settings.store_url.split("://", 1)[0])


def create_token(settings: Settings, user: str, ttl_s: int) -> int:
    """Print a development JWT for ``user`` (HS256, TETHER_JWT_SECRET) on stdout."""
    from tether.api.auth import mint_token

    try:
        token = mint_token(settings, user, ttl_s)
    except ValueError as exc:
        sys.stderr.write(f"tether: {exc}\n")
        return 2
    sys.stdout.write(token + "\n")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tether", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("serve", help="serve the API, the socket and the page")
    run.add_argument("--host")
    run.add_argument("--port", type=int)
    run.add_argument("--migrate", action="store_true", help="apply migrations first")
    commands.add_parser("migrate", help="apply database migrations")
    token = commands.add_parser("token", help="development JWTs")
    token_commands = token.add_subparsers(dest="token_command", required=True)
    create = token_commands.add_parser("create", help="print a JWT signed with the secret")
    create.add_argument("--user", required=True, help="the token's subject (user)")
    create.add_argument("--ttl", type=int, default=3600, help="lifetime in seconds")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    overrides = {
        k: v
        for k, v in {
            "host": getattr(args, "host", None),
            "port": getattr(args, "port", None),
        }.items()
        if v is not None
    }
    try:
        settings = Settings(**overrides)
    except ValueError as exc:
        sys.stderr.write(f"tether: invalid settings: {exc}\n")
        return 2
    if args.command == "token":
        if args.ttl < 1 or not args.user.strip():
            sys.stderr.write("tether: --user must be non-empty and --ttl at least 1\n")
            return 2
        return create_token(settings, args.user, args.ttl)
    configure_logging(settings.log_format, settings.log_level)
    if args.command == "migrate" or getattr(args, "migrate", False):
        migrate(settings)
    if args.command == "serve":
        serve(settings)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
