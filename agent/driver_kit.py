"""Deprecated: the conformance kit is `agent.driver_api.kit`; this re-export goes in the next release."""

import warnings

from agent.driver_api.kit import *  # noqa: F403
from agent.driver_api.kit import __all__  # noqa: F401

warnings.warn("agent.driver_kit is deprecated; import agent.driver_api.kit instead", DeprecationWarning, stacklevel=2)
