"""Who is calling: auth modes ``none`` (user ``local``), ``token`` (static API tokens) and
``jwt`` (HS256 secret or RS256 public key), and the Origin check that stops cross-site
requests and socket hijacking.

A token is a secret: nothing here logs it, and a refusal never echoes it.
"""

from __future__ import annotations

import hmac
import time
from typing import Any
from urllib.parse import urlsplit

import jwt

from tether.settings import Settings, is_loopback_host

LOCAL_USER = "local"
MAX_USER_CHARS = 256


class JwtVerifier:
    """Checks signature, ``exp``, ``nbf``, ``aud`` and ``iss`` (with ``leeway_s`` of clock
    skew); the user is the ``sub`` claim. Any failure proves nothing: ``None``."""

    def __init__(self, settings: Settings) -> None:
        self._key = settings.jwt_secret or settings.jwt_public_key
        self._algorithms = ["HS256"] if settings.jwt_secret else ["RS256"]
        self._audience = settings.jwt_audience or None
        self._issuer = settings.jwt_issuer or None
        self._leeway_s = settings.jwt_leeway_s

    def user_for(self, token: str) -> str | None:
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=self._algorithms,
                audience=self._audience,
                issuer=self._issuer,
                leeway=self._leeway_s,
                options={"require": ["exp", "sub"]},
            )
        except jwt.PyJWTError:
            return None
        sub = claims.get("sub")
        return sub if isinstance(sub, str) and 0 < len(sub) <= MAX_USER_CHARS else None


def mint_token(settings: Settings, user: str, ttl_s: int, now_s: float | None = None) -> str:
    """A development JWT for ``user``, signed HS256 with ``TETHER_JWT_SECRET``, carrying the
    configured audience and issuer, valid for ``ttl_s`` seconds."""
    if not settings.jwt_secret:
        raise ValueError("tether token create needs TETHER_JWT_SECRET (HS256)")
    issued = int(now_s if now_s is not None else time.time())
    claims: dict[str, Any] = {"sub": user, "iat": issued, "nbf": issued, "exp": issued + ttl_s}
    if settings.jwt_audience:
        claims["aud"] = settings.jwt_audience
    if settings.jwt_issuer:
        claims["iss"] = settings.jwt_issuer
    return jwt.encode(claims, settings.jwt_secret, algorithm="HS256")


class Authenticator:
    def __init__(self, settings: Settings) -> None:
        self.mode = settings.auth
        self._tokens = settings.token_map() if settings.auth == "token" else {}
        self._jwt = JwtVerifier(settings) if settings.auth == "jwt" else None

    def user_for(self, token: str | None) -> str | None:
        """The user a token belongs to; ``None`` when it proves nothing. Constant-time."""
        if self.mode == "none":
            return LOCAL_USER
        if not token:
            return None
        if self._jwt is not None:
            return self._jwt.user_for(token)
        found = None
        for known, user in self._tokens.items():
            if hmac.compare_digest(known.encode(), token.encode()):
                found = user
        return found


def bearer(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, value = authorization.partition(" ")
    return value.strip() or None if scheme.lower() == "bearer" else None


def origin_allowed(origin: str | None, host: str | None, allowed: list[str]) -> bool:
    """No Origin (a non-browser client), the page's own origin, or one listed as allowed."""
    if not origin:
        return True
    if origin in allowed or "*" in allowed:
        return True
    parts = urlsplit(origin)
    return bool(host) and parts.netloc.lower() == (host or "").lower()


def host_allowed(host: str | None, settings: Settings) -> bool:
    """DNS rebinding: a hostile page whose name resolves to this machine reaches us with
    its own name as ``Host`` (and as its same-origin ``Origin``). With no authentication
    only requests addressed to a loopback name, or to a listed origin's host, are served."""
    if settings.auth != "none" or settings.allow_insecure_none or not host:
        return True
    name = urlsplit(f"//{host}").hostname or ""
    listed = {urlsplit(origin).hostname for origin in settings.allowed_origins}
    return is_loopback_host(name) or name in listed


def refusal(origin: str | None, host: str | None, settings: Settings) -> str | None:
    """Why a request must be refused before it reads anything (``None``: go on). One check
    for REST and the socket: the ``Host`` it was addressed to, then its ``Origin``."""
    if not host_allowed(host, settings):
        return f"host {host} is not allowed"
    if not origin_allowed(origin, host, settings.allowed_origins):
        return f"origin {origin} is not allowed"
    return None
