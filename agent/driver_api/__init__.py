"""The driver SDK: everything a driver may import from `agent`, in one package.

- `readings`: DoorCount, PresenceChange, Basket, BasketLine (what a driver emits);
- `contract`: Sink, the Driver protocol (with `name` and `alive()`), DriverHealth, DriverOptionError;
- `options`: declarative option fields (type, default, allowed values, fix text), declared once;
- `base`: BackgroundDriver (thread, stop gate, capped backoff; `start()` never raises for a device);
- `serial`: SerialDriver; `webhook`: WebhookDriver; `registry`: entry-point discovery;
- `kit`: the conformance kit an integrator runs against a driver.

`agent.driver_kit`, `agent.serial_driver` and `drivers.webhook_http` still import, with a
DeprecationWarning, for one release.
"""

from agent.driver_api.base import BackgroundDriver, DeclaredOptions
from agent.driver_api.contract import Driver, DriverHealth, DriverOptionError, Sink
from agent.driver_api.options import REQUIRED, Option, Options
from agent.driver_api.readings import Basket, BasketLine, DoorCount, PresenceChange, Reading
from agent.driver_api.registry import ENTRY_POINT_GROUP, LazyDrivers, installed_drivers
from agent.driver_api.serial import SerialDriver
from agent.errors import DriverError

__all__ = [
    "ENTRY_POINT_GROUP",
    "REQUIRED",
    "BackgroundDriver",
    "Basket",
    "BasketLine",
    "DeclaredOptions",
    "DoorCount",
    "Driver",
    "DriverError",
    "DriverHealth",
    "DriverOptionError",
    "LazyDrivers",
    "Option",
    "Options",
    "PresenceChange",
    "Reading",
    "SerialDriver",
    "Sink",
    "installed_drivers",
]
