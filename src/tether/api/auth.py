"""Who is calling: auth modes ``none`` (user ``local``) and ``token`` (static API tokens),
and the Origin check that stops cross-site requests and socket hijacking.
"""

from __future__ import annotations

import hmac
from urllib.parse import urlsplit

from tether.settings import Settings

LOCAL_USER = "local"


class Authenticator:
    def __init__(self, settings: Settings) -> None:
        self.mode = settings.auth
        self._tokens = settings.token_map() if settings.auth == "token" else {}

    def user_for(self, token: str | None) -> str | None:
        """The user a token belongs to; ``None`` when it proves nothing. Constant-time."""
        if self.mode == "none":
            return LOCAL_USER
        if not token:
            return None
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
