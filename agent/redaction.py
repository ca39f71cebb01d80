"""Which configuration keys hold secrets, and how an error shows their values: never.

One rule for the agent's own keys and every driver's: a key whose last part names a password, secret,
token, key or credential holds a secret, whatever type its value has (`password = 12345` is a secret
written as a number). Messages show the value's kind instead of the value. It lives outside
`agent.config` because the driver SDK (`agent.driver_api.options`) uses it too, and `agent.config`
imports the SDK.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

# The last dotted part of the key, compared in lower case: "password", "password_hash", "signature_key",
# "access_token", "auth_code", "secret", "api_key", "private_key", "credentials".
_SECRET_PART = re.compile(r"(^|_)(password|passwd|passphrase|secret|token|key|auth|credentials?)(_|$)")
# Keys that hold a public value though their name says "key"; any key ending in "_file" holds a path
# (the TLS key file's path is not the key itself, and a path is what the operator needs to see).
_NOT_SECRET = frozenset({"public_key"})
HIDDEN = "<hidden>"
_MIN_SCRUB = 4  # shorter values are not scrubbed from free text: "1" would mangle every number (and leak by absence)


def is_secret_key(key: str) -> bool:
    """True when the configuration key (dotted or bare) holds a secret."""
    last = key.rsplit(".", 1)[-1].split("[", 1)[0].lower()
    return last not in _NOT_SECRET and not last.endswith("_file") and bool(_SECRET_PART.search(last))


def shown(key: str, value: Any) -> str:
    """`value` as an error message may show it: its repr, or only its kind when `key` holds a secret."""
    return hidden(key, value) if is_secret_key(key) else repr(value)


def hidden(key: str, value: Any) -> str:
    """What a message shows for a secret value: its kind, never the value."""
    return f"{HIDDEN} (a {type(value).__name__}; {key.rsplit('.', 1)[-1]} is a secret, so it is not printed)"


def secret_values(table: Mapping[str, Any]) -> set[str]:
    """The text of every value under a secret key anywhere in a parsed TOML document (any type)."""
    return set(_walk(table, False))


def _walk(node: Any, secret: bool) -> Iterator[str]:
    if isinstance(node, Mapping):
        for key, value in node.items():
            yield from _walk(value, secret or is_secret_key(str(key)))
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value, secret)
    elif secret and not (isinstance(node, str) and node.startswith("env:")):  # a variable's name is no secret
        yield str(node)
        yield repr(node)


def scrub(text: str, secrets: set[str]) -> str:
    """`text` with every secret value of at least four characters replaced (a second line of defence)."""
    for value in sorted(secrets, key=len, reverse=True):
        if len(value) >= _MIN_SCRUB:
            text = text.replace(value, HIDDEN)
    return text
