import time

import jwt
import pytest

from service.errors import Unauthorized
from service.security.tokens import ISSUER, Tokens

SECRET = "s" * 48


def test_roundtrip_and_cache() -> None:
    tokens = Tokens(SECRET, 60, 10)
    token = tokens.issue(7, "alice")
    ident = tokens.identify(f"Bearer {token}")
    assert (ident.user_id, ident.username) == (7, "alice")
    assert tokens.identify(f"bearer {token}") is ident  # served from the verified-token cache


@pytest.mark.parametrize("header", [None, "", "Bearer", "Basic abc", "Bearer not.a.jwt", "Bearer x"])
def test_missing_or_malformed(header: str | None) -> None:
    with pytest.raises(Unauthorized):
        Tokens(SECRET, 60, 10).identify(header)


def test_forged_with_other_secret() -> None:
    forged = Tokens("o" * 48, 60, 10).issue(1, "admin")
    with pytest.raises(Unauthorized):
        Tokens(SECRET, 60, 10).identify(f"Bearer {forged}")


def test_alg_none_rejected() -> None:
    claims = {"sub": "1", "name": "x", "iat": 0, "exp": time.time() + 60, "iss": ISSUER}
    token = jwt.encode(claims, None, algorithm="none")
    with pytest.raises(Unauthorized):
        Tokens(SECRET, 60, 10).identify(f"Bearer {token}")


def test_expired_rejected_even_when_cached() -> None:
    tokens = Tokens(SECRET, 1, 10)
    token = tokens.issue(1, "a")
    tokens.identify(f"Bearer {token}")
    time.sleep(2.1)
    with pytest.raises(Unauthorized):
        tokens.identify(f"Bearer {token}")


def test_cache_is_bounded() -> None:
    tokens = Tokens(SECRET, 60, 3)
    for i in range(10):
        tokens.identify(f"Bearer {tokens.issue(i, 'u')}")
    assert len(tokens._cache) == 3
