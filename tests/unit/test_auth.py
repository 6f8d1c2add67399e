"""JWT verification (HS256 and RS256; exp, nbf, aud, iss, leeway), dev tokens, settings."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tether.api.auth import Authenticator, mint_token
from tether.cli import main
from tether.settings import Settings

SECRET = "s" * 40
OTHER_SECRET = "o" * 40


def settings(**values: Any) -> Settings:
    base: dict[str, Any] = {"auth": "jwt", "jwt_secret": SECRET, "jwt_leeway_s": 5}
    return Settings(_env_file=None, **(base | values))  # type: ignore[call-arg]


def claims(**extra: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"sub": "alice", "iat": now, "nbf": now, "exp": now + 60} | extra


def hs(payload: dict[str, Any], key: str = SECRET) -> str:
    return jwt.encode(payload, key, algorithm="HS256")


def rsa_pair() -> tuple[Any, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return key, public.decode()


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def confused(payload: dict[str, Any], public_pem: str) -> str:
    """The algorithm-confusion attack: HS256 signed with the RS256 public key as secret."""
    head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64(json.dumps(payload).encode())
    mac = hmac.new(public_pem.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64(mac)}"


def test_hs256_user_is_the_subject() -> None:
    auth = Authenticator(settings())
    assert auth.user_for(hs(claims())) == "alice"


@pytest.mark.parametrize(
    ("payload", "key"),
    [
        (claims(exp=int(time.time()) - 60), SECRET),
        (claims(nbf=int(time.time()) + 60), SECRET),
        (claims(), OTHER_SECRET),
        ({"sub": "alice"}, SECRET),
        (claims(sub=""), SECRET),
        (claims(sub=42), SECRET),
    ],
    ids=["expired", "not-yet-valid", "wrong-key", "no-exp", "empty-sub", "non-string-sub"],
)
def test_bad_tokens_prove_nothing(payload: dict[str, Any], key: str) -> None:
    assert Authenticator(settings()).user_for(hs(payload, key)) is None


def test_leeway_tolerates_small_clock_skew_only() -> None:
    auth = Authenticator(settings(jwt_leeway_s=30))
    assert auth.user_for(hs(claims(exp=int(time.time()) - 10))) == "alice"
    assert auth.user_for(hs(claims(exp=int(time.time()) - 60))) is None


def test_audience_and_issuer_are_checked() -> None:
    auth = Authenticator(settings(jwt_audience="tether", jwt_issuer="https://idp.example"))
    good = claims(aud="tether", iss="https://idp.example")
    assert auth.user_for(hs(good)) == "alice"
    assert auth.user_for(hs(good | {"aud": "other"})) is None
    assert auth.user_for(hs(good | {"iss": "https://evil.example"})) is None
    assert auth.user_for(hs(claims())) is None, "aud and iss are required when configured"


def test_forged_and_garbage_tokens() -> None:
    auth = Authenticator(settings())
    header, payload, _ = hs(claims()).split(".")
    forged_payload = hs(claims(sub="root")).split(".")[1]
    assert auth.user_for(f"{header}.{forged_payload}.{hs(claims()).split('.')[2]}") is None
    unsigned = jwt.encode(claims(), None, algorithm="none")
    assert auth.user_for(unsigned) is None
    for garbage in ("", "x", "a.b.c", "é.é.é", f"{header}.{payload}"):
        assert auth.user_for(garbage) is None


def test_rs256_public_key() -> None:
    private, public = rsa_pair()
    other, _ = rsa_pair()
    auth = Authenticator(settings(jwt_secret="", jwt_public_key=public))
    assert auth.user_for(jwt.encode(claims(), private, algorithm="RS256")) == "alice"
    assert auth.user_for(jwt.encode(claims(), other, algorithm="RS256")) is None
    assert auth.user_for(confused(claims(), public)) is None, "no HS256 with the public key"


def test_jwt_settings_refuse_weak_or_missing_keys() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        settings(jwt_secret="")
    with pytest.raises(ValueError, match="at least 32 bytes"):
        settings(jwt_secret="short-secret")
    with pytest.raises(ValueError, match="exactly one"):
        settings(jwt_public_key="-----BEGIN PUBLIC KEY-----")


def test_minted_tokens_verify_and_expire() -> None:
    config = settings(jwt_audience="tether", jwt_issuer="dev")
    auth = Authenticator(config)
    assert auth.user_for(mint_token(config, "bob", ttl_s=60)) == "bob"
    old = mint_token(config, "bob", ttl_s=60, now_s=time.time() - 3600)
    assert auth.user_for(old) is None


def test_token_create_command(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TETHER_JWT_SECRET", SECRET)
    assert main(["token", "create", "--user", "carol", "--ttl", "120"]) == 0
    token = capsys.readouterr().out.strip()
    decoded = jwt.decode(token, SECRET, algorithms=["HS256"])
    assert decoded["sub"] == "carol"
    assert decoded["exp"] - decoded["iat"] == 120
    monkeypatch.delenv("TETHER_JWT_SECRET")
    assert main(["token", "create", "--user", "carol"]) == 2
    assert "TETHER_JWT_SECRET" in capsys.readouterr().err
