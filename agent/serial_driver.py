"""Deprecated: SerialDriver is `agent.driver_api.serial`; this re-export goes in the next release."""

import warnings

from agent.driver_api.serial import PORT_ERRORS, SerialDriver

__all__ = ["PORT_ERRORS", "SerialDriver"]

warnings.warn(
    "agent.serial_driver is deprecated; import agent.driver_api.serial instead", DeprecationWarning, stacklevel=2
)
