"""Dashboard accounts, passwords, sessions and login rate limits.

Passwords are hashed with scrypt from the standard library (hashlib.scrypt, OpenSSL's implementation; no extra
dependency on a shop's or a coop's box), n=2**15, r=8, p=1 and a 16-byte random salt, stored as
`scrypt$n$r$p$salt$hash` so the parameters can be raised later without breaking old hashes. A session is a
random 32-byte token in an HttpOnly cookie; the database keeps only its SHA-256, so a leaked database copy
cannot be replayed as a sign-in. Each session carries its own CSRF token for the forms it is shown.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import secrets
import threading
import time
from collections import deque

from hub.config import NAME_RE
from hub.db import Connection

ROLES = ("admin", "shop")
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**15, 8, 1
MIN_PASSWORD = 10


class AuthError(ValueError):
    """A refused account operation, with a message fit for the operator."""


@dataclasses.dataclass(frozen=True)
class User:
    name: str
    role: str  # "admin" sees every shop; "shop" sees its own shop and the district figures
    store: str | None

    def may_see(self, store: str) -> bool:
        return self.role == "admin" or store == self.store


@dataclasses.dataclass(frozen=True)
class Session:
    user: User
    csrf: str
    expires_at: float


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(
        password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, maxmem=64 * 1024 * 1024, dklen=32
    )
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def check_password(password: str, stored: str) -> bool:
    try:
        kind, n, r, p, salt, digest = stored.split("$")
        if kind != "scrypt":
            return False
        got = hashlib.scrypt(
            password.encode(), salt=_unb64(salt), n=int(n), r=int(r), p=int(p), maxmem=64 * 1024 * 1024, dklen=32
        )
    except (ValueError, MemoryError):
        return False
    return hmac.compare_digest(got, _unb64(digest))


# Checked against when the account does not exist, so a wrong name costs as long as a wrong password.
_DUMMY_HASH = hash_password(secrets.token_urlsafe(16))


def add_user(conn: Connection, name: str, role: str, store: str | None, password: str) -> None:
    """Create or replace an account (replacing resets its password and signs it out everywhere)."""
    if not NAME_RE.match(name):
        raise AuthError(f"{name!r} is not a valid account name: use lowercase letters, digits, '-' or '_'")
    if role not in ROLES:
        raise AuthError(f"role {role!r} is unknown: use admin or shop")
    if role == "shop" and (not store or not NAME_RE.match(store)):
        raise AuthError("a shop account needs --store STORE (the shop's name in its topics)")
    if role == "admin":
        store = None
    if len(password) < MIN_PASSWORD:
        raise AuthError(f"the password is too short: use at least {MIN_PASSWORD} characters")
    hashed = hash_password(password)
    with conn.transaction():
        conn.execute("DELETE FROM hub_sessions WHERE name = ?", (name,))
        conn.execute(
            "INSERT INTO hub_users (name, role, store, password_hash, created_at) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT (name) DO UPDATE SET role = excluded.role, store = excluded.store,"
            " password_hash = excluded.password_hash",
            (name, role, store, hashed, time.time()),
        )


def authenticate(conn: Connection, name: str, password: str) -> User | None:
    rows = conn.query("SELECT role, store, password_hash FROM hub_users WHERE name = ?", (name,))
    if not rows:
        check_password(password, _DUMMY_HASH)
        return None
    role, store, stored = rows[0]
    return User(name, str(role), store) if check_password(password, str(stored)) else None


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def open_session(conn: Connection, user: User, lifetime_s: float, now: float | None = None) -> str:
    """A new session for `user`; returns the cookie value."""
    now = time.time() if now is None else now
    token = secrets.token_urlsafe(32)
    conn.execute("DELETE FROM hub_sessions WHERE expires_at < ?", (now,))
    conn.execute(
        "INSERT INTO hub_sessions (token_hash, name, csrf, created_at, expires_at) VALUES (?, ?, ?, ?, ?)",
        (_token_hash(token), user.name, secrets.token_urlsafe(24), now, now + lifetime_s),
    )
    return token


def find_session(conn: Connection, token: str, now: float | None = None) -> Session | None:
    now = time.time() if now is None else now
    rows = conn.query(
        "SELECT u.name, u.role, u.store, s.csrf, s.expires_at FROM hub_sessions s JOIN hub_users u ON u.name = s.name"
        " WHERE s.token_hash = ? AND s.expires_at > ?",
        (_token_hash(token), now),
    )
    if not rows:
        return None
    name, role, store, csrf, expires = rows[0]
    return Session(User(str(name), str(role), store), str(csrf), float(expires))


def close_session(conn: Connection, token: str) -> None:
    conn.execute("DELETE FROM hub_sessions WHERE token_hash = ?", (_token_hash(token),))


class LoginLimiter:
    """Failed sign-ins per account and per client address in a sliding window; over either limit, refuse.

    Kept in memory per worker: a restart forgets it, which costs an attacker a restart per few guesses, and
    several workers each enforce their own limit (the dashboard normally runs on one of them).
    """

    def __init__(self, per_account: int = 5, per_address: int = 20, window_s: float = 900.0) -> None:
        self.per_account, self.per_address, self.window_s = per_account, per_address, window_s
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, key: str, now: float) -> deque[float]:
        times = self._failures.setdefault(key, deque())
        while times and times[0] <= now - self.window_s:
            times.popleft()
        return times

    def blocked(self, account: str, address: str, now: float | None = None) -> float:
        """Seconds until a sign-in may be tried again (0 when it may be tried now)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            waits = []
            for key, limit in ((f"a:{account}", self.per_account), (f"ip:{address}", self.per_address)):
                times = self._recent(key, now)
                if len(times) >= limit:
                    waits.append(times[0] + self.window_s - now)
            return max(waits, default=0.0)

    def failed(self, account: str, address: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        with self._lock:
            if len(self._failures) > 100_000:  # a flood of made-up names must not grow memory without bound
                self._failures.clear()
            for key in (f"a:{account}", f"ip:{address}"):
                self._recent(key, now).append(now)

    def succeeded(self, account: str) -> None:
        with self._lock:
            self._failures.pop(f"a:{account}", None)
