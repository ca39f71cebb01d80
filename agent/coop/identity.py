"""The shop's long-lived Ed25519 identity key for secure aggregation: created once on the box, enrolled by
its public half with the coop (the roster), never sent anywhere else.

The file holds the 32 raw private bytes, owner-readable only (like the database). Losing it means
enrolling a new key: the coop publishes a new roster and every shop pins its new digest.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.coop.secagg.primitives import IdentityKey
from agent.errors import ConfigError


def load_or_create(path: Path) -> IdentityKey:
    """The key stored at `path`, created (mode 0600) when the file does not exist yet."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        raw = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
        )
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(raw)
            out.flush()
            os.fsync(out.fileno())
    return load(path)


def load(path: Path) -> IdentityKey:
    """The key stored at `path`; ConfigError naming the file when it is missing or damaged."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        problem = f"cannot be read ({exc.strerror})"
        raise ConfigError(str(path), "(file)", problem, "run `shopkeeper coop-identity`") from None
    if len(raw) != 32:
        raise ConfigError(str(path), "(file)", "is not a 32-byte Ed25519 key", "restore it from backup or re-enrol")
    return IdentityKey(Ed25519PrivateKey.from_private_bytes(raw))


def public_text(key: IdentityKey) -> str:
    """The public key as the coop's roster file holds it (standard base64)."""
    return base64.b64encode(key.public_bytes).decode()
