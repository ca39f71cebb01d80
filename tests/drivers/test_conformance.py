"""The shipped conformance kit (agent.driver_api.kit) run against every built-in driver."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from agent.demo.local_broker import LocalBroker
from agent.driver_api import installed_drivers
from agent.driver_api import kit as driver_kit
from agent.driver_api.kit import Harness
from firmware_sim.ld2410 import LD2410Simulator
from firmware_sim.modbus_counter import ModbusCounterSimulator
from firmware_sim.pty_device import PtyDevice
from firmware_sim.terabee import TerabeeCounters

ROOT = Path(__file__).parents[2]


def fast_backoff(driver: Any) -> None:
    driver.backoff_initial_s, driver.backoff_max_s = 0.02, 0.2


class TerabeeDevice:
    def __init__(self, link: Path) -> None:
        self.pty = PtyDevice(link)
        self.counters = TerabeeCounters()

    def produce(self) -> None:
        self.pty.write(self.counters.cross("in"))

    def inject_garbage(self) -> None:
        self.pty.write(b"\x13\x37garbage\x00")

    def unplug(self) -> None:
        self.pty.unplug()

    def replug(self) -> None:
        self.pty.replug()

    def close(self) -> None:
        self.pty.close()


def terabee_device(workdir: Path) -> tuple[TerabeeDevice, Mapping[str, Any]]:
    link = workdir / "by-id" / "terabee"
    return TerabeeDevice(link), {"port": str(link), "door": "front"}


class LD2410Device:
    def __init__(self, link: Path) -> None:
        self.sim = LD2410Simulator(link, [(0.0, 0)], report_hz=20).start()
        self.target = 0

    def produce(self) -> None:
        self.target = 0 if self.target else 1
        self.sim.set_target(self.target)

    def inject_garbage(self) -> None:
        self.sim.inject_garbage(b"\x01\x02\xf4\xf3\xf2\xf1\xff\xff\x00junk")

    def unplug(self) -> None:
        self.sim.unplug()

    def replug(self) -> None:
        self.sim.replug()

    def close(self) -> None:
        self.sim.stop()


def ld2410_device(workdir: Path) -> tuple[LD2410Device, Mapping[str, Any]]:
    link = workdir / "by-id" / "radar"
    return LD2410Device(link), {"port": str(link), "zone": "till", "hold_s": 0}


class ModbusDevice:
    def __init__(self, link: Path) -> None:
        self.sim = ModbusCounterSimulator(link).start()

    def produce(self) -> None:
        self.sim.cross("entry")

    def inject_garbage(self) -> None:
        self.sim.inject_garbage(b"\x01\x03\x12garbage-not-a-reply")

    def unplug(self) -> None:
        self.sim.unplug()

    def replug(self) -> None:
        self.sim.replug()

    def close(self) -> None:
        self.sim.stop()


def modbus_device(workdir: Path) -> tuple[ModbusDevice, Mapping[str, Any]]:
    link = workdir / "by-id" / "counter"
    options = {"port": str(link), "door": "side", "poll_interval_s": 0.05, "response_timeout_s": 0.2}
    return ModbusDevice(link), options


class BeamDevice:
    """Two mock pins; a crossing is A broken, B broken, A clear, B clear, 50 ms apart."""

    def __init__(self) -> None:
        from gpiozero.pins.mock import MockFactory

        self.factory = MockFactory()
        self.a, self.b = self.factory.pin(17), self.factory.pin(27)
        self.a.drive_high()
        self.b.drive_high()

    def produce(self) -> None:
        for pin, level in ((self.a, 0), (self.b, 0), (self.a, 1), (self.b, 1)):
            pin.drive_low() if level == 0 else pin.drive_high()
            time.sleep(0.05)
        time.sleep(0.2)  # past the re-arm time

    def inject_garbage(self) -> None:
        self.a.drive_low()
        self.a.drive_high()  # a break far shorter than min_broken_s: a glitch

    def close(self) -> None:
        self.factory.reset()

    def occupy_pins(self, device: Any, options: Mapping[str, Any]) -> Any:
        """Harness.block: another input already holds pin A (gpiozero raises GPIOPinInUse)."""
        from gpiozero import DigitalInputDevice

        holder = DigitalInputDevice(17, pin_factory=self.factory)
        return holder.close


@dataclasses.dataclass
class BeamHarnessState:
    device: BeamDevice | None = None


def beam_harness() -> Harness:
    state = BeamHarnessState()

    def start(workdir: Path) -> tuple[BeamDevice, Mapping[str, Any]]:
        state.device = BeamDevice()
        return state.device, {"door": "back", "pin_a": 17, "pin_b": 27}

    def tune(driver: Any) -> None:
        assert state.device is not None
        driver.pin_factory = state.device.factory

    def block(device: BeamDevice, options: Mapping[str, Any]) -> Any:
        return device.occupy_pins(device, options)

    return Harness("back_door", start, tune=tune, supports_unplug=False, block=block)


class MqttDevice:
    """A real Mosquitto and a publisher playing a Zigbee2MQTT door contact; unplug = broker down."""

    def __init__(self, workdir: Path) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.broker = LocalBroker(workdir / "broker").start()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2)
        self.client.connect("127.0.0.1", self.broker.port)
        self.client.loop_start()
        self.open = False

    def _publish(self, payload: bytes) -> None:
        self.client.publish("zigbee2mqtt/front_door_contact", payload, qos=1)

    def produce(self) -> None:
        self.open = not self.open
        self._publish(b'{"contact": %s, "battery": 97, "linkquality": 120}' % (b"false" if self.open else b"true"))

    def inject_garbage(self) -> None:
        self._publish(b"{not json")

    def unplug(self) -> None:
        self.broker.stop()

    def replug(self) -> None:
        self.broker.start()  # same port; the publisher and the driver both reconnect

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()
        self.broker.stop()


def mqtt_device(workdir: Path) -> tuple[MqttDevice, Mapping[str, Any]]:
    device = MqttDevice(workdir)
    sensor = {"source": "zigbee2mqtt", "device": "front_door_contact", "type": "contact", "zone": "front_door"}
    return device, {"port": device.broker.port, "sensors": [sensor]}


def mqtt_tune(driver: Any) -> None:
    driver.backoff_initial_s, driver.backoff_max_s = 0.2, 1.0


class EscPosDevice:
    """A receipt printer on a pty, printing receipts from firmware_sim.escpos's encoder."""

    def __init__(self, link: Path) -> None:
        from firmware_sim import escpos

        self.sim, self.pty, self.number = escpos, PtyDevice(link), 100

    def produce(self) -> None:
        self.number += 1
        line = self.sim.SimLine("Croissant", "bakery", 2, 120)
        self.pty.write(self.sim.encode_receipt(self.sim.SimBasket(str(self.number), 0, (line,), layout="corner_store")))

    def inject_garbage(self) -> None:
        self.pty.write(b"\x1b\xff\x07\x1d\xfe")

    def unplug(self) -> None:
        self.pty.unplug()

    def replug(self) -> None:
        self.pty.replug()

    def close(self) -> None:
        self.pty.close()


def escpos_device(workdir: Path) -> tuple[EscPosDevice, Mapping[str, Any]]:
    link = workdir / "by-id" / "printer"
    return EscPosDevice(link), {"port": str(link), "idle_flush_s": 0.1}


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class WebhookSender:
    """A POS posting signed webhooks over real HTTP; it has no unplug, garbage is a signed malformed body."""

    def __init__(self, port: int, path: str, sign: Any, event: Any) -> None:
        self.url, self.sign, self.event, self.count = f"http://127.0.0.1:{port}{path}", sign, event, 0

    def _post(self, body: bytes, headers: dict[str, str]) -> None:
        import urllib.error
        import urllib.request

        request = urllib.request.Request(self.url, body, {**headers, **self.sign(body)})
        try:
            urllib.request.urlopen(request, timeout=5).close()
        except urllib.error.HTTPError:
            pass
        except OSError:
            pass  # not listening yet: the kit produces again

    def produce(self) -> None:
        self.count += 1
        body, headers = self.event(self.count)
        self._post(body, headers)

    def inject_garbage(self) -> None:
        self._post(b"{garbage", {"X-Shopify-Topic": "orders/create"})

    def close(self) -> None:
        pass


def square_sender(workdir: Path) -> tuple[WebhookSender, Mapping[str, Any]]:
    import json

    from drivers.square_webhook.protocol import square_signature

    port, url = free_port(), "https://shop.example.org/square/webhook"

    def event(n: int) -> tuple[bytes, dict[str, str]]:
        payment = {"id": f"P{n}", "status": "COMPLETED", "source_type": "CASH", "amount_money": {"amount": 250 + n}}
        body = {"type": "payment.updated", "event_id": f"ev-{n}", "data": {"object": {"payment": payment}}}
        return json.dumps(body).encode(), {}

    sign = lambda body: {"X-Square-HmacSha256-Signature": square_signature("k", url, body)}  # noqa: E731
    options = {"notification_url": url, "signature_key": "k", "access_token": "t", "port": port}
    return WebhookSender(port, "/square/webhook", sign, event), options


def shopify_sender(workdir: Path) -> tuple[WebhookSender, Mapping[str, Any]]:
    import json

    from drivers.shopify_webhook.protocol import shopify_signature

    port = free_port()

    def event(n: int) -> tuple[bytes, dict[str, str]]:
        order = {"id": n, "currency": "EUR", "total_price": "1.20",
                 "line_items": [{"title": "Croissant", "quantity": 1, "price": "1.20"}]}  # fmt: skip
        return json.dumps(order).encode(), {"X-Shopify-Topic": "orders/create", "X-Shopify-Webhook-Id": f"w{n}"}

    sign = lambda body: {"X-Shopify-Hmac-Sha256": shopify_signature("s", body)}  # noqa: E731
    return WebhookSender(port, "/shopify/webhook", sign, event), {"secret": "s", "port": port}


class CloverSender(WebhookSender):
    """Clover posting order notifications, with a local server playing Clover's REST API for any order id."""

    def __init__(self, port: int, sign: Any, event: Any) -> None:
        import json
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        super().__init__(port, "/clover/webhook", sign, event)

        class Api(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                return

            def do_GET(self) -> None:
                order_id = self.path.split("?")[0].rsplit("/", 1)[-1]
                order = {"id": order_id, "currency": "USD", "total": 250, "state": "locked",
                         "lineItems": {"elements": [{"name": "Croissant", "price": 250}]}}  # fmt: skip
                body = json.dumps(order if order_id.startswith("ORDER") else {"elements": []}).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.api = ThreadingHTTPServer(("127.0.0.1", 0), Api)
        threading.Thread(target=self.api.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.api.shutdown()
        self.api.server_close()


def clover_sender(workdir: Path) -> tuple[WebhookSender, Mapping[str, Any]]:
    import json

    port = free_port()

    def event(n: int) -> tuple[bytes, dict[str, str]]:
        updates = [{"objectId": f"O:ORDER{n}", "type": "CREATE", "ts": 1779287120000 + n}]
        return json.dumps({"appId": "APP", "merchants": {"MERCHANT00001": updates}}).encode(), {}

    sender = CloverSender(port, lambda body: {"X-Clover-Auth": "auth"}, event)
    options = {"merchant_id": "MERCHANT00001", "auth_code": "auth", "access_token": "t", "port": port,
               "api_base": f"http://127.0.0.1:{sender.api.server_address[1]}"}  # fmt: skip
    return sender, options


class DropFolderDevice:
    """A POS exporting CSV files; unplug takes the folder away (an unmounted share), replug brings it back."""

    def __init__(self, folder: Path) -> None:
        self.folder, self.count = folder, 0
        folder.mkdir(parents=True)

    def _drop(self, name: str, text: str) -> None:
        import os

        tmp = self.folder / f".{name}.part"
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, self.folder / name)

    def produce(self) -> None:
        self.count += 1
        self._drop(f"export-{self.count}.csv", f"receipt_id,name,quantity,unit_price\nR{self.count},Tea,1,1.50\n")

    def inject_garbage(self) -> None:
        self.count += 1
        self._drop(f"export-{self.count}.csv", "receipt_id,name,unit_price\nR,Tea,lots\n")

    def unplug(self) -> None:
        self.folder.rename(self.folder.with_name("away"))

    def replug(self) -> None:
        self.folder.with_name("away").rename(self.folder)

    def close(self) -> None:
        pass


def dropfolder_device(workdir: Path) -> tuple[DropFolderDevice, Mapping[str, Any]]:
    folder = workdir / "export"
    return DropFolderDevice(folder), {"folder": str(folder), "poll_interval_s": 0.02, "stable_s": 0}


HARNESSES: dict[str, Harness] = {
    "terabee": Harness("front_door", terabee_device, tune=fast_backoff),
    "ld2410": Harness("till_radar", ld2410_device, tune=fast_backoff),
    "modbus_counter": Harness("side_door", modbus_device, tune=fast_backoff),
    "beam_gpio": beam_harness(),
    "mqtt_sensors": Harness("shop_sensors", mqtt_device, tune=mqtt_tune, timeout_s=15),
    "escpos": Harness("till_printer", escpos_device, tune=fast_backoff),
    "square": Harness(
        "square_pos", square_sender, tune=fast_backoff, supports_unplug=False, block=driver_kit.occupy_tcp_port
    ),
    "shopify": Harness(
        "shopify_pos", shopify_sender, tune=fast_backoff, supports_unplug=False, block=driver_kit.occupy_tcp_port
    ),
    "pos_dropfolder": Harness("pos_export", dropfolder_device),
    "clover": Harness("clover_pos", clover_sender, supports_unplug=False),
}


class ThermalDevice:
    """A GY-MCU90640 on a pty, fed from firmware_sim.thermal90640's public scene API: one walker per produce()."""

    def __init__(self, link: Path) -> None:
        import numpy as np

        from firmware_sim import thermal90640 as sim

        self.sim = sim
        self.pty = PtyDevice(link)
        walker = sim.crossing_walker(np.random.default_rng(7), 1.0, sim.ENTRY, speed=12.0)
        self.frames = sim.render_frames(sim.Scenario("conformance", 7, 8.0, 4.0, (walker,)))

    def produce(self) -> None:
        for frame in self.frames:
            self.pty.write(self.sim.encode_frame(frame, 2600))
            time.sleep(0.004)  # a pace the pty buffer can take

    def inject_garbage(self) -> None:
        self.pty.write(b"\x00\x13 not a thermal frame \x5a")

    def unplug(self) -> None:
        self.pty.unplug()

    def replug(self) -> None:
        self.pty.replug()

    def close(self) -> None:
        self.pty.close()


def thermal90640_harness() -> Harness | None:
    """Built from firmware_sim.thermal90640's public API (Scenario, crossing_walker, render_frames, encode_frame)."""
    if not (ROOT / "drivers" / "thermal90640" / "driver.py").exists():
        return None  # TODO(lead): the thermal90640 driver is not in the tree

    def start(workdir: Path) -> tuple[ThermalDevice, Mapping[str, Any]]:
        link = workdir / "by-id" / "thermal"
        return ThermalDevice(link), {"port": str(link), "door": "front"}

    return Harness("front_door", start, tune=fast_backoff, timeout_s=15)


KINDS = [
    "terabee", "ld2410", "modbus_counter", "thermal90640", "beam_gpio", "mqtt_sensors",
    "escpos", "square", "shopify", "pos_dropfolder", "clover",
]  # fmt: skip
CHECKS = [
    driver_kit.check_validates_options_without_io,
    driver_kit.check_start_stop,
    driver_kit.check_start_never_raises,
    driver_kit.check_no_emission_after_stop,
    driver_kit.check_recovers_after_unplug,
    driver_kit.check_resyncs_after_garbage,
]


def harness_for(kind: str) -> Harness:
    harness = thermal90640_harness() if kind == "thermal90640" else HARNESSES[kind]
    assert harness is not None, f"every built-in driver needs a conformance harness; {kind} has none"
    return harness


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__.removeprefix("check_"))
@pytest.mark.parametrize("kind", KINDS)
def test_builtin_driver_conforms(kind: str, check: Any, tmp_path: Path) -> None:
    harness = harness_for(kind)
    check(installed_drivers()[kind], harness, tmp_path)


@pytest.mark.parametrize("kind", KINDS)
def test_builtin_driver_readme_includes_its_sample(kind: str) -> None:
    driver_kit.check_readme_includes_sample(installed_drivers()[kind])


@pytest.mark.parametrize(
    "kind",
    KINDS,
)
def test_builtin_driver_sample_shows_every_declared_option_with_its_default(kind: str) -> None:
    driver_kit.check_sample_matches_options(installed_drivers()[kind])


@pytest.mark.parametrize("kind", KINDS)
def test_builtin_driver_imports_no_deprecated_api_path(kind: str) -> None:
    driver_kit.check_imports_current_api(installed_drivers()[kind])


def test_the_kit_fails_a_driver_whose_start_raises(tmp_path: Path) -> None:
    from tests.drivers.binds_in_start import BindsInStart, Knock

    port = free_port()
    harness = Harness("naive", lambda workdir: (Knock(port), {"port": port}), supports_unplug=False,
                      block=driver_kit.occupy_tcp_port)  # fmt: skip
    with pytest.raises(AssertionError, match=r"start\(\) raised OSError"):
        driver_kit.check_start_never_raises(BindsInStart, harness, tmp_path)  # type: ignore[arg-type]


def test_the_kit_flags_a_driver_module_that_imports_an_old_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib.util
    import sys
    import warnings

    source = tmp_path / "old_style_driver.py"
    source.write_text("from agent.serial_driver import SerialDriver\n\n\nclass OldStyle(SerialDriver):\n    pass\n")
    spec = importlib.util.spec_from_file_location("old_style_driver", source)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "old_style_driver", module)  # inspect finds a class's module there
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # tests/drivers/test_deprecated_paths.py has it
        spec.loader.exec_module(module)
    with pytest.raises(AssertionError, match=r"agent\.driver_api\.serial"):
        driver_kit.check_imports_current_api(module.OldStyle)


def test_the_kit_catches_a_driver_that_emits_after_stop(tmp_path: Path) -> None:
    from drivers.terabee.driver import TerabeeDriver

    class LeakyTerabee(TerabeeDriver):
        calls = 0

        def stop(self) -> None:
            self.calls += 1
            if self.calls > 1:  # the first stop() forgets to stop; the kit's clean-up stops it for real
                super().stop()

    with pytest.raises(AssertionError, match="after stop"):
        driver_kit.check_no_emission_after_stop(LeakyTerabee, leaky_harness(), tmp_path)


def leaky_harness() -> Harness:
    class Chatty(TerabeeDevice):
        def produce(self) -> None:
            for _ in range(3):
                super().produce()

    def start(workdir: Path) -> tuple[Chatty, Mapping[str, Any]]:
        link = workdir / "chatty"
        return Chatty(link), {"port": str(link), "door": "front"}

    return Harness("front_door", start, tune=fast_backoff, supports_unplug=False, supports_garbage=False)


def test_the_kit_catches_a_driver_that_does_io_in_from_options(tmp_path: Path) -> None:
    from drivers.terabee.driver import TerabeeDriver

    class Eager(TerabeeDriver):
        @classmethod
        def from_options(cls, name: str, options: Mapping[str, Any]) -> Eager:
            with open(options["port"], "rb"):
                pass
            raise AssertionError("unreachable")

    with pytest.raises(AssertionError, match="did I/O"):
        driver_kit.check_validates_options_without_io(Eager, HARNESSES["terabee"], tmp_path)


TEMPLATE = ROOT / "docs" / "driver-template"


@pytest.fixture
def template_driver(tmp_path: Path) -> Any:
    """docs/driver-template copied to drivers/mydevice, as the guide says, and imported from there."""
    import importlib
    import shutil
    import sys

    import drivers

    parent = tmp_path / "copied"
    shutil.copytree(TEMPLATE, parent / "mydevice")
    drivers.__path__.append(str(parent))
    try:
        yield importlib.import_module("drivers.mydevice.driver").MyDeviceDriver
    finally:
        drivers.__path__.remove(str(parent))
        for name in [m for m in sys.modules if m.startswith("drivers.mydevice")]:
            del sys.modules[name]


class TemplateDevice:
    def __init__(self, link: Path, encode: Any) -> None:
        self.pty, self.encode, self.entries = PtyDevice(link), encode, 0

    def produce(self) -> None:
        self.entries += 1
        self.pty.write(self.encode(self.entries, 0))

    def inject_garbage(self) -> None:
        self.pty.write(b"\x00noise\n")

    def unplug(self) -> None:
        self.pty.unplug()

    def replug(self) -> None:
        self.pty.replug()

    def close(self) -> None:
        self.pty.close()


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__.removeprefix("check_"))
def test_the_driver_template_conforms_as_copied(template_driver: Any, check: Any, tmp_path: Path) -> None:
    import sys

    encode = sys.modules["drivers.mydevice.protocol"].encode_line

    def start(workdir: Path) -> tuple[TemplateDevice, Mapping[str, Any]]:
        link = workdir / "by-id" / "mydevice"
        return TemplateDevice(link, encode), {"port": str(link), "door": "front"}

    check(template_driver, Harness("front_door", start, tune=fast_backoff), tmp_path)


def test_the_driver_template_readme_includes_its_sample(template_driver: Any) -> None:
    driver_kit.check_readme_includes_sample(template_driver)
    driver_kit.check_sample_matches_options(template_driver)
    driver_kit.check_imports_current_api(template_driver)


def test_the_driver_template_tests_pass_when_copied(tmp_path: Path) -> None:
    import shutil
    import subprocess
    import sys

    shutil.copytree(TEMPLATE, tmp_path / "mydevice")
    script = (
        "import sys, drivers, pytest; drivers.__path__.append(sys.argv[1]); "
        "sys.exit(pytest.main([sys.argv[2], '-q', '-p', 'no:cacheprovider']))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path), str(tmp_path / "mydevice" / "test_protocol.py")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
