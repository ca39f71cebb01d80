"""The `[owner_page]` configuration section and the owner's password hash (scrypt, from the standard library).

scrypt is memory-hard and ships with Python's hashlib (OpenSSL), so the box needs no extra package
for it. The hash is stored in the configuration as one self-describing string, so the cost can be
raised later without breaking existing hashes.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import ipaddress
import os
import zoneinfo
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # only a type here: agent.config imports this module while it loads
    from agent.config.reader import TableReader

SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**15, 8, 1  # 32 MiB per hash: slow to guess, fine on a Pi Zero 2 W
MAX_MEM = 64 * 1024 * 1024
MIN_PASSWORD = 10
LOOPBACK_NAMES = ("127.0.0.1", "::1", "localhost")


@dataclasses.dataclass(frozen=True)
class OwnerPageSettings:
    """Where the owner page listens and who may see it."""

    host: str = "127.0.0.1"
    port: int = 8088
    password_hash: str = ""  # "" = no password: loopback peers only
    timezone: str = ""  # "" = the box's own zone
    allowed_hosts: tuple[str, ...] = ()  # extra Host header names (e.g. "shop-box.local")
    secure_cookie: bool = False  # set when a TLS proxy serves the page, so the browser sends it over HTTPS only

    @property
    def lan(self) -> bool:
        """True when the page listens beyond this box."""
        return not is_loopback(self.host)


def is_loopback(host: str) -> bool:
    """True for a loopback address or the name localhost."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def read_owner_page(section: TableReader) -> OwnerPageSettings | None:
    """Parse `[owner_page]`; None when `listen = ""` turns the page off."""
    listen = section.get("listen", str, "127.0.0.1:8088")
    password_hash = section.get("password_hash", str, "")
    timezone = section.get("timezone", str, "")
    hosts = section.get("allowed_hosts", list, [])
    secure_cookie = section.get("secure_cookie", bool, False)
    section.reject_unknown()
    if not listen:
        return None
    host, _, port_text = listen.rpartition(":")
    host = host.strip("[]")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if host != "localhost":
            host = ""
    if not host or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise section.fail(
            "listen", f"{listen!r} is not an address:port", 'use e.g. "127.0.0.1:8088", "0.0.0.0:8088" or ""'
        )
    if password_hash and parse_hash(password_hash) is None:
        raise section.fail(
            "password_hash", "is not a hash made by `shopkeeper owner-password`", "run it again and paste its line"
        )
    if timezone:
        try:
            zoneinfo.ZoneInfo(timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise section.fail(
                "timezone", f"{timezone!r} is not a known time zone", 'use e.g. "Europe/Berlin"'
            ) from None
    if not all(isinstance(h, str) and h for h in hosts):
        raise section.fail("allowed_hosts", "must be a list of host names", 'write e.g. ["shop-box.local"]')
    return OwnerPageSettings(host, int(port_text), password_hash, timezone, tuple(hosts), secure_cookie)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4))


def hash_password(password: str) -> str:
    """scrypt$n=..,r=..,p=..$salt$hash for the configuration file."""
    if len(password) < MIN_PASSWORD:
        raise ValueError(f"use at least {MIN_PASSWORD} characters")
    salt = os.urandom(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, maxmem=MAX_MEM)
    return f"scrypt$n={SCRYPT_N},r={SCRYPT_R},p={SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def parse_hash(text: str) -> tuple[int, int, int, bytes, bytes] | None:
    """(n, r, p, salt, digest) of a stored hash, or None when it is not one of ours."""
    try:
        scheme, params, salt, digest = text.split("$")
        values = dict(item.split("=") for item in params.split(","))
        n, r, p = int(values["n"]), int(values["r"]), int(values["p"])
        if scheme != "scrypt" or n < 2**14 or n & (n - 1) or not 1 <= r <= 32 or not 1 <= p <= 16:
            return None
        return n, r, p, _unb64(salt), _unb64(digest)
    except (ValueError, KeyError):
        return None


def verify_password(password: str, stored: str) -> bool:
    """True when `password` matches the stored hash (constant-time comparison)."""
    parsed = parse_hash(stored)
    if parsed is None:
        return False
    n, r, p, salt, digest = parsed
    maxmem = max(MAX_MEM, 256 * n * r)
    candidate = hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, maxmem=maxmem, dklen=len(digest))
    return hmac.compare_digest(candidate, digest)
