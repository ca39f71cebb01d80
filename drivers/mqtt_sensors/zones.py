"""Sensor states to zone presence: pure, no I/O, no clock.

A zone is present while any of its sensors is active. What each observation means:

- `SensorActive` (Z2M contact/occupancy/presence, Tasmota ON/OFF) sets the sensor's state. A change
  from a known state counts as one change.
- `SensorToggle` (Tasmota TOGGLE) says the input changed without saying to which state: it counts one
  change and flips the known state; while no state is known yet it cannot be placed (counted in
  `unplaced_toggles`, nothing emitted) until an ON/OFF arrives.
- Anything retained (delivered because we subscribed, not because it happened now) is a state, not an
  event: it sets the known state silently and counts nothing, so an agent restart never replays the
  door's last opening. A retained TOGGLE says nothing about now and is ignored.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from drivers.mqtt_sensors.protocol import SensorActive, SensorSpec, SensorToggle


@dataclasses.dataclass
class SensorState:
    """What the driver knows about one sensor."""

    active: bool | None = None  # None until a state is known
    changes: int = 0
    unplaced_toggles: int = 0


@dataclasses.dataclass
class ZoneState:
    """Zone presence from sensor observations; update() reports only changes of a zone."""

    sensors: dict[SensorSpec, SensorState] = dataclasses.field(default_factory=dict)
    present: dict[str, bool] = dataclasses.field(default_factory=dict)

    def update(self, observation: SensorActive | SensorToggle) -> bool | None:
        """The zone's new presence if this observation changed it (and was not retained), else None."""
        spec = observation.sensor
        state = self.sensors.setdefault(spec, SensorState())
        if isinstance(observation, SensorToggle):
            if observation.retained:
                return None
            state.changes += 1
            if state.active is None:
                state.unplaced_toggles += 1
                return None
            state.active = not state.active
        else:
            if not observation.retained and state.active is not None and state.active != observation.active:
                state.changes += 1
            state.active = observation.active
        zone = spec.zone
        now = any(s.active for k, s in self.sensors.items() if k.zone == zone)
        if observation.retained:
            self.present[zone] = now  # the baseline the next live change is compared with
            return None
        if self.present.get(zone) == now:
            return None
        self.present[zone] = now
        return now

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """Per sensor key: state ("active", "inactive" or "unknown"), changes, unplaced_toggles."""
        return {
            spec.key: {
                "state": "unknown" if s.active is None else "active" if s.active else "inactive",
                "changes": s.changes,
                "unplaced_toggles": s.unplaced_toggles,
            }
            for spec, s in sorted(self.sensors.items(), key=lambda item: item[0].key)
        }
