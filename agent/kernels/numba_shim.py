"""The one place numba is imported; every kernel takes `njit` from here so caching is uniform."""

from collections.abc import Callable
from typing import Any, TypeVar

import numba

F = TypeVar("F", bound=Callable[..., Any])


def njit(func: F) -> F:
    """Compile `func` in nopython mode with an on-disk cache (warm starts load in milliseconds)."""
    return numba.njit(cache=True, nogil=True)(func)  # type: ignore[return-value]
