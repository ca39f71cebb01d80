"""Deprecated: the webhook receiver is `agent.driver_api.webhook`; this re-export goes in the next release."""

import warnings

from agent.driver_api.webhook import (
    COMMON_OPTIONS,
    MAX_BODY_BYTES,
    PATH,
    BadPayload,
    DeadLetter,
    Handled,
    RecentIds,
    Unavailable,
    WebhookDriver,
    common_options,
    resolve_secret,
    secret_option,
)

__all__ = [
    "COMMON_OPTIONS",
    "MAX_BODY_BYTES",
    "PATH",
    "BadPayload",
    "DeadLetter",
    "Handled",
    "RecentIds",
    "Unavailable",
    "WebhookDriver",
    "common_options",
    "resolve_secret",
    "secret_option",
]

warnings.warn(
    "drivers.webhook_http is deprecated; import agent.driver_api.webhook instead", DeprecationWarning, stacklevel=2
)
