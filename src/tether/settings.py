"""Settings: one class, built once (CLI or test fixture) and passed to ``create_app``.

Nothing reads the environment at import time. Every field is listed in ``.env.example``.
"""

from __future__ import annotations

import ipaddress
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

LOOPBACK_NAMES = frozenset({"localhost", "ip6-localhost"})
MIN_JWT_SECRET_BYTES = 32


def is_loopback_host(host: str) -> bool:
    """True when ``host`` names only this machine (127.0.0.0/8, ::1, localhost)."""
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _split_csv(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class Settings(BaseSettings):
    """Every tunable of a tether server; names and defaults follow DESIGN §8."""

    model_config = SettingsConfigDict(
        env_prefix="TETHER_", env_file=".env", extra="ignore", frozen=True
    )

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    store_url: str = "sqlite+aiosqlite:///./data/tether.db"
    bus_url: str = "local"
    server_id: str = ""

    auth: Literal["none", "token", "jwt"] = "none"
    api_tokens: str = ""
    jwt_secret: str = ""
    jwt_public_key: str = ""
    jwt_audience: str = ""
    jwt_issuer: str = ""
    jwt_leeway_s: float = Field(30.0, ge=0)
    allow_insecure_none: bool = False
    allowed_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)

    workspace_root: str = "./data/workspaces"
    model: str = ""
    model_base_url: str = ""
    model_api_key: str = ""
    workspace_max_files: int = Field(20_000, ge=1)
    workspace_max_file_bytes: int = Field(1_048_576, ge=1024)
    workspace_read_max_chars: int = Field(100_000, ge=100)
    repo_map_cache_entries: int = Field(16, ge=1)
    repo_map_cache_bytes: int = Field(268_435_456, ge=1024)
    search_context_entries: int = Field(20, ge=1)
    file_lock_timeout_s: float = Field(10.0, gt=0)
    file_lock_lease_s: float = Field(30.0, ge=1)
    agents: Annotated[list[str], NoDecode] = Field(default_factory=list)
    default_agent: str = "demo"

    log_format: Literal["console", "json"] = "console"
    log_level: str = "INFO"
    session_ttl_s: int = Field(0, ge=0)

    hello_timeout_s: float = Field(10.0, gt=0)
    max_frame_bytes: int = Field(1_048_576, ge=1024)
    max_message_chars: int = Field(100_000, ge=1)
    max_json_depth: int = Field(32, ge=2)
    max_command_id_chars: int = Field(64, ge=1, le=256)
    max_metadata_bytes: int = Field(16_384, ge=2)
    max_title_chars: int = Field(200, ge=1)
    max_connections_per_session: int = Field(16, ge=1)
    max_connections: int = Field(10_000, ge=1)
    max_bad_frames: int = Field(20, ge=1)
    bad_frame_window_s: float = Field(60.0, gt=0)
    frames_per_s: float = Field(50.0, gt=0)
    frame_burst: int = Field(100, ge=1)
    max_active_runs_per_user: int = Field(8, ge=1)
    max_metadata_keys: int = Field(64, ge=1)
    max_connections_per_user: int = Field(64, ge=1)
    max_runs_per_day: int = Field(0, ge=0)
    max_tokens_per_day: int = Field(0, ge=0)
    limiter_url: str = "memory"
    messages_per_s: float = Field(5.0, gt=0)
    message_burst: int = Field(20, ge=1)
    run_starts_per_s: float = Field(2.0, gt=0)
    run_start_burst: int = Field(10, ge=1)
    connects_per_s: float = Field(2.0, gt=0)
    connect_burst: int = Field(20, ge=1)
    session_reap_interval_s: float = Field(60.0, gt=0)
    outbound_queue_frames: int = Field(1024, ge=8)
    replay_batch_events: int = Field(200, ge=1)
    max_replay_events: int = Field(10_000, ge=1)
    send_timeout_s: float = Field(10.0, gt=0)

    store_timeout_s: float = Field(10.0, gt=0)
    write_batch_max: int = Field(256, ge=1)
    write_queue_max: int = Field(10_000, ge=1)
    run_lease_s: float = Field(15.0, gt=0)
    recovery_interval_s: float = Field(5.0, gt=0)
    shutdown_grace_s: float = Field(5.0, ge=0)
    run_timeout_s: float = Field(600.0, gt=0)
    approval_timeout_s: float = Field(0.0, ge=0)
    question_timeout_s: float = Field(0.0, ge=0)
    interrupt_sweep_interval_s: float = Field(1.0, gt=0)

    @field_validator("allowed_origins", "agents", mode="before")
    @classmethod
    def _csv(cls, value: object) -> object:
        return _split_csv(value)

    @field_validator("limiter_url")
    @classmethod
    def _limiter(cls, value: str) -> str:
        if value != "memory" and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("TETHER_LIMITER_URL must be 'memory' or redis://host:port/db")
        return value

    @model_validator(mode="after")
    def _check_auth(self) -> Settings:
        if self.auth == "token" and not self.token_map():
            raise ValueError("TETHER_AUTH=token needs TETHER_API_TOKENS (token1=alice,...)")
        if self.auth == "jwt":
            self._check_jwt()
        if self.auth == "none" and not is_loopback_host(self.host) and not self.allow_insecure_none:
            raise ValueError(
                f"TETHER_AUTH=none refuses to serve on non-loopback host {self.host!r}; "
                "use token or jwt auth, or set TETHER_ALLOW_INSECURE_NONE=true"
            )
        return self

    def _check_jwt(self) -> None:
        if bool(self.jwt_secret) == bool(self.jwt_public_key):
            raise ValueError(
                "TETHER_AUTH=jwt needs exactly one of TETHER_JWT_SECRET (HS256) "
                "or TETHER_JWT_PUBLIC_KEY (RS256, PEM)"
            )
        if self.jwt_secret and len(self.jwt_secret.encode()) < MIN_JWT_SECRET_BYTES:
            raise ValueError(
                f"TETHER_JWT_SECRET must be at least {MIN_JWT_SECRET_BYTES} bytes (HS256)"
            )

    def token_map(self) -> dict[str, str]:
        """``TETHER_API_TOKENS`` parsed into token → user; a malformed entry is an error."""
        result: dict[str, str] = {}
        for item in self.api_tokens.split(","):
            token, sep, user = (part.strip() for part in item.strip().partition("="))
            if not item.strip():
                continue
            if not sep or len(token) < 8 or not user:
                raise ValueError("each TETHER_API_TOKENS entry must be token=user, token 8+ chars")
            result[token] = user
        return result
