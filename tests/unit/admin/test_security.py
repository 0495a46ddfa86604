"""Password hashing, tokens, redirects and what the dashboard believes about proxies."""

from __future__ import annotations

import threading
import time

import pytest
from argon2 import PasswordHasher
from starlette.requests import Request

from app.admin import security
from app.config import Settings


def test_passwords_hash_with_argon2id_and_verify() -> None:
    stored = security.hash_password("correct horse battery staple")
    assert stored.startswith("$argon2id$")
    assert "correct horse" not in stored
    assert security.verify_password(stored, "correct horse battery staple").ok
    assert not security.verify_password(stored, "correct horse battery stapl").ok
    assert not security.verify_password("not-a-hash", "whatever").ok


def test_an_unknown_user_always_fails() -> None:
    assert not security.verify_password(None, "anything at all").ok


def test_weak_hashes_are_upgraded_on_sign_in() -> None:
    weak = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1).hash("a long enough pw")
    check = security.verify_password(weak, "a long enough pw")
    assert check.ok
    assert check.rehashed is not None
    assert security.verify_password(check.rehashed, "a long enough pw").rehashed is None


def test_password_policy() -> None:
    with pytest.raises(security.WeakPassword, match="at least 12"):
        security.hash_password("short")
    with pytest.raises(security.WeakPassword, match="at most"):
        security.check_password_policy("x" * 2000)


def test_tokens_are_random_and_compared_safely() -> None:
    first, second = security.new_token(), security.new_token()
    assert first != second
    assert len(first) >= 40
    assert security.token_hash(first) != first
    assert security.tokens_match(first, first)
    assert not security.tokens_match(first, second)
    assert not security.tokens_match(first, "")
    assert not security.tokens_match(None, None)


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/admin/orders?status=failed", "/admin/orders?status=failed"),
        ("/admin", "/admin"),
        (None, "/admin"),
        ("https://evil.example/admin", "/admin"),
        ("//evil.example/admin", "/admin"),
        ("/admin\\@evil", "/admin"),
        ("/api/v1/orders", "/admin"),
        ("/admin\r\nSet-Cookie: x", "/admin"),
    ],
)
def test_only_dashboard_paths_are_followed_after_sign_in(target: str | None, expected: str) -> None:
    assert security.safe_next(target) == expected


def _request(headers: dict[str, str], scheme: str = "http", client: str = "192.0.2.1") -> Request:
    return Request(
        {
            "type": "http",
            "scheme": scheme,
            "method": "GET",
            "path": "/admin",
            "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
            "client": (client, 1234),
            "server": ("dcibridge", 80),
        }
    )


def _settings(trust: bool) -> Settings:
    return Settings(_env_file=None, admin_trust_proxy_headers=trust)  # type: ignore[call-arg]


def test_forwarded_headers_are_ignored_unless_the_proxy_is_trusted() -> None:
    forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "198.51.100.9"}
    request = _request(forwarded)
    assert security.request_scheme(request, _settings(False)) == "http"
    assert security.client_ip(request, _settings(False)) == "192.0.2.1"
    assert security.request_scheme(request, _settings(True)) == "https"
    assert security.client_ip(request, _settings(True)) == "198.51.100.9"


def test_a_trusted_proxy_is_believed_only_for_what_it_added() -> None:
    # The client wrote the first X-Forwarded-For entry itself; the proxy appended the last.
    request = _request({"X-Forwarded-For": "203.0.113.66, 198.51.100.9"})
    assert security.client_ip(request, _settings(True)) == "198.51.100.9"
    odd = _request({"X-Forwarded-Proto": "gopher"}, scheme="https")
    assert security.request_scheme(odd, _settings(True)) == "https"


def test_the_unknown_user_dummy_hash_costs_what_a_real_one_does() -> None:
    # Written out in the source: if the hasher's parameters change, it must too,
    # or an unknown username would answer faster than a wrong password.
    assert not security._hasher.check_needs_rehash(security._DUMMY_HASH)


def test_at_most_two_verifications_run_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    from concurrent.futures import ThreadPoolExecutor

    running = peak = 0
    lock = threading.Lock()
    real = security._hasher

    class CountingHasher:
        def verify(self, stored: str, password: str) -> bool:
            nonlocal running, peak
            with lock:
                running += 1
                peak = max(peak, running)
            try:
                time.sleep(0.05)
                return bool(real.verify(stored, password))
            finally:
                with lock:
                    running -= 1

    monkeypatch.setattr(security, "_hasher", CountingHasher())
    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(lambda _: security.verify_password(None, "x" * 16), range(6)))
    assert all(not result.ok for result in results)
    assert peak == 2
