"""Driver conformance kit: plain functions an integrator runs (from pytest) against their own driver.

Each check takes the driver class and a `Harness` that says how to run the driver against its
simulator. A harness is a small dataclass:

    harness = Harness(
        instance="front_door",
        start_device=lambda workdir: (MyDevice(workdir / "tty"), {"port": str(workdir / "tty"), "door": "front"}),
        tune=lambda driver: setattr(driver, "backoff_initial_s", 0.02),
    )

`start_device(workdir)` creates the simulated device and returns it with the driver options that
point at it. The device object offers `produce()` (make the device produce something the driver
must report: at least one `emit`), `close()`, and, where the transport has them, `inject_garbage()`
(bytes or payloads the driver must count as bad and survive), `unplug()` and `replug()`. Mark what
the transport cannot do with `supports_unplug=False` / `supports_garbage=False`.

    def test_my_driver_recovers_after_unplug(tmp_path):
        driver_kit.check_recovers_after_unplug(MyDriver, harness, tmp_path)

Every check raises AssertionError with a sentence saying what the driver did wrong.
"""

from __future__ import annotations

import ast
import builtins
import contextlib
import dataclasses
import inspect
import socket
import threading
import time
import tomllib
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol
from unittest import mock

from agent.driver_api.contract import Driver, DriverOptionError
from agent.driver_api.options import Options
from agent.driver_api.recording import RecordingSink
from agent.driver_api.sample_toml import sample_problems

__all__ = [
    "ALL_CHECKS",
    "DEPRECATED_MODULES",
    "README_SECTIONS",
    "Harness",
    "RecordingSink",
    "SimulatedDevice",
    "check_imports_current_api",
    "check_no_emission_after_stop",
    "check_readme_includes_sample",
    "check_recovers_after_unplug",
    "check_resyncs_after_garbage",
    "check_sample_matches_options",
    "check_start_never_raises",
    "check_start_stop",
    "check_validates_options_without_io",
    "occupy_tcp_port",
    "run_all",
]

# Old homes of the driver API, kept as re-exports for one release: a driver should not import them.
DEPRECATED_MODULES = {
    "agent.driver_kit": "agent.driver_api.kit",
    "agent.serial_driver": "agent.driver_api.serial",
    "drivers.webhook_http": "agent.driver_api.webhook",
}
README_SECTIONS = ("## Configuration", "## What it emits", "## Wiring and troubleshooting", "## Example output")


class SimulatedDevice(Protocol):
    """What a harness's device offers the kit."""

    def produce(self) -> None:
        """Make the device produce something the driver must emit (at least one reading)."""

    def close(self) -> None:
        """Tear the device down."""


@dataclasses.dataclass
class Harness:
    """How the kit runs one driver against its simulator."""

    instance: str
    start_device: Callable[[Path], tuple[Any, Mapping[str, Any]]]
    tune: Callable[[Any], None] | None = None  # shorten back-offs and poll intervals for tests
    supports_unplug: bool = True
    supports_garbage: bool = True
    timeout_s: float = 10.0
    readme: Path | None = None  # default: README.md next to the driver's module
    # Makes the device unreachable before start() and returns what makes it reachable again; by default
    # device.unplug() / device.replug() where supported. A listener's harness passes occupy_tcp_port.
    block: Callable[[Any, Mapping[str, Any]], Callable[[], None]] | None = None


def occupy_tcp_port(device: Any, options: Mapping[str, Any]) -> Callable[[], None]:
    """Harness.block for a driver that listens on options["port"]: another socket holds that port."""
    holder = socket.socket()
    holder.bind((str(options.get("host", "127.0.0.1")), int(options["port"])))
    holder.listen()
    return holder.close


def _poll(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)


@contextlib.contextmanager
def _running(driver_class: type[Driver], harness: Harness, workdir: Path) -> Iterator[tuple[Any, Any, RecordingSink]]:
    device, options = harness.start_device(workdir)
    driver: Any = None
    try:
        driver = driver_class.from_options(harness.instance, options)
        if harness.tune is not None:
            harness.tune(driver)
        sink = RecordingSink()
        _start(driver, sink)
        yield driver, device, sink
    finally:
        if driver is not None:
            driver.stop()
        device.close()


def _start(driver: Any, sink: RecordingSink) -> None:
    try:
        driver.start(sink)
    except Exception as exc:
        raise AssertionError(
            f"start() raised {type(exc).__name__}: {exc}; a driver must report a device it cannot reach "
            "(sink.problem, health()['last_error']) and retry in the background, never raise"
        ) from exc


def _produce_and_wait(device: Any, sink: RecordingSink, timeout: float, what: str) -> None:
    """Make the device produce until the driver emits once more (a first reading may set a baseline)."""
    before = len(sink.snapshot()[0])
    deadline = time.monotonic() + timeout
    while len(sink.snapshot()[0]) <= before:
        if time.monotonic() > deadline:
            raise AssertionError(f"the driver emitted nothing {what} within {timeout} s")
        device.produce()
        with contextlib.suppress(AssertionError):
            sink.wait_for(lambda: len(sink.readings) > before, min(1.0, timeout), what)


def check_validates_options_without_io(driver_class: type[Driver], harness: Harness, workdir: Path) -> None:
    """from_options accepts the harness's and the sample's options without opening files, sockets or threads,
    and rejects an unknown key with a DriverOptionError naming it."""
    device, options = harness.start_device(workdir)
    device.close()

    def no_io(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"from_options did I/O: {args[:1]!r}")

    sample = tomllib.loads(driver_class.sample_config())["drivers"]
    threads = threading.active_count()
    with (
        mock.patch.object(builtins, "open", no_io),
        mock.patch.object(socket.socket, "connect", no_io),
        mock.patch("os.open", no_io),
        mock.patch.object(threading.Thread, "start", no_io),
    ):
        driver_class.from_options(harness.instance, options)
        for name, table in sample.items():
            if table.get("kind") == driver_class.kind:
                driver_class.from_options(name, table)
        try:
            driver_class.from_options(harness.instance, {**options, "no_such_option_xyz": 1})
        except DriverOptionError as exc:
            assert exc.key == "no_such_option_xyz", f"DriverOptionError names {exc.key!r}, not the unknown key"
        else:
            raise AssertionError("from_options accepted an unknown option; reject it with DriverOptionError")
    assert threading.active_count() == threads, "from_options started a thread"


def check_start_stop(driver_class: type[Driver], harness: Harness, workdir: Path) -> None:
    """start() returns at once, the driver connects and emits, stop() returns promptly and ends its threads."""
    threads_before = set(threading.enumerate())
    with _running(driver_class, harness, workdir) as (driver, device, sink):
        _poll(lambda: driver.health()["connected"], harness.timeout_s, "health()['connected'] to become true")
        _produce_and_wait(device, sink, harness.timeout_s, "after start")
        assert driver.alive(), "alive() is false while the driver runs"
        started = time.monotonic()
        driver.stop()
        assert time.monotonic() - started < 5, "stop() took more than 5 s"
        assert not driver.health()["connected"], "health() still says connected after stop()"
        assert driver.name == harness.instance, f"driver.name is {driver.name!r}, not the instance name"
        assert driver.alive(), "alive() is false after stop(); it is false only when the driver died by itself"
        for key in ("connected", "frames", "bad_frames", "reconnects", "last_error"):
            assert key in driver.health(), f"health() lacks {key!r}"
    _poll(
        lambda: not [t for t in set(threading.enumerate()) - threads_before if t.is_alive() and not t.daemon],
        5,
        "the driver's non-daemon threads to end",
    )


def check_no_emission_after_stop(driver_class: type[Driver], harness: Harness, workdir: Path) -> None:
    """Once stop() returns, nothing more reaches the sink, whatever the device does."""
    with _running(driver_class, harness, workdir) as (driver, device, sink):
        _produce_and_wait(device, sink, harness.timeout_s, "after start")
        driver.stop()
        before = sink.snapshot()
        for _ in range(5):
            with contextlib.suppress(Exception):
                device.produce()
            if harness.supports_garbage:
                with contextlib.suppress(Exception):
                    device.inject_garbage()
        if harness.supports_unplug:
            with contextlib.suppress(Exception):
                device.unplug()
        time.sleep(0.5)  # nothing to await: the claim is that nothing happens
        assert sink.snapshot() == before, "the driver reached the sink after stop() returned"


def check_recovers_after_unplug(driver_class: type[Driver], harness: Harness, workdir: Path) -> None:
    """After an unplug the driver reports one problem and disconnected; after a replug it reconnects and emits."""
    if not harness.supports_unplug:
        return
    with _running(driver_class, harness, workdir) as (driver, device, sink):
        _produce_and_wait(device, sink, harness.timeout_s, "after start")
        device.unplug()
        _poll(lambda: not driver.health()["connected"], harness.timeout_s, "health() to show disconnected")
        sink.wait_for(lambda: len(sink.problems) >= 1, harness.timeout_s, "a problem() report of the unplug")
        device.replug()
        _poll(lambda: driver.health()["connected"], harness.timeout_s, "health() to show connected after replug")
        _produce_and_wait(device, sink, harness.timeout_s, "after replug")
        assert driver.health()["reconnects"] >= 1, "health()['reconnects'] did not count the reconnect"


def check_resyncs_after_garbage(driver_class: type[Driver], harness: Harness, workdir: Path) -> None:
    """Garbage is counted through sink.bad_frame and health, and the next good data is still read."""
    if not harness.supports_garbage:
        return
    with _running(driver_class, harness, workdir) as (driver, device, sink):
        _produce_and_wait(device, sink, harness.timeout_s, "after start")
        device.inject_garbage()
        sink.wait_for(lambda: len(sink.bad) >= 1, harness.timeout_s, "a bad_frame() report of the garbage")
        _produce_and_wait(device, sink, harness.timeout_s, "after the garbage")
        assert driver.health()["bad_frames"] >= 1, "health()['bad_frames'] did not count the garbage"


def check_readme_includes_sample(driver_class: type[Driver], readme: Path | None = None) -> None:
    """The README has the four sections, includes sample.toml verbatim, and the sample validates."""
    if readme is None:
        module = inspect.getmodule(driver_class)
        assert module is not None and module.__file__, "cannot find the driver's module"
        readme = Path(module.__file__).with_name("README.md")
    text = readme.read_text(encoding="utf-8")
    missing = [s for s in README_SECTIONS if s not in text]
    assert not missing, f"{readme} lacks the sections {missing}"
    sample = driver_class.sample_config()
    assert sample in text, f"{readme} does not include sample.toml verbatim under ## Configuration"
    tables = tomllib.loads(sample)["drivers"]
    ours = {name: t for name, t in tables.items() if t.get("kind") == driver_class.kind}
    assert ours, f'sample.toml has no [drivers.<name>] table with kind = "{driver_class.kind}"'
    for name, table in ours.items():
        driver_class.from_options(name, table)


def check_start_never_raises(driver_class: type[Driver], harness: Harness, workdir: Path) -> None:
    """With its device unreachable, start() returns, the driver reports why (sink.problem, health()
    last_error, not connected) and keeps trying; once the device is back it connects and emits."""
    device, options = harness.start_device(workdir)
    driver: Any = None
    try:
        if harness.block is not None:
            unblock = harness.block(device, options)
        elif harness.supports_unplug:
            device.unplug()
            unblock = device.replug
        else:
            return  # the transport cannot be made unreachable from the harness
        driver = driver_class.from_options(harness.instance, options)
        if harness.tune is not None:
            harness.tune(driver)
        sink = RecordingSink()
        _start(driver, sink)
        sink.wait_for(
            lambda: len(sink.problems) >= 1, harness.timeout_s, "a problem() report of the unreachable device"
        )
        health = driver.health()
        assert not health["connected"], "health() says connected while the device is unreachable"
        assert health["last_error"], "health()['last_error'] does not say why the driver cannot reach its device"
        assert driver.alive(), "the driver gave up (alive() is false); keep retrying in the background"
        unblock()
        _poll(lambda: driver.health()["connected"], harness.timeout_s, "health() to show connected once reachable")
        _produce_and_wait(device, sink, harness.timeout_s, "once the device was reachable")
    finally:
        if driver is not None:
            driver.stop()
        device.close()


def check_imports_current_api(driver_class: type[Driver]) -> None:
    """The driver's module imports none of the deprecated homes of the driver API."""
    module = inspect.getmodule(driver_class)
    assert module is not None and module.__file__, "cannot find the driver's module"
    tree = ast.parse(Path(module.__file__).read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            found += [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
    old = sorted({name for name in found if name in DEPRECATED_MODULES})
    assert not old, f"{module.__file__} imports {', '.join(old)}; use " + ", ".join(DEPRECATED_MODULES[n] for n in old)


def check_sample_matches_options(driver_class: type[Driver]) -> None:
    """sample.toml shows every declared option with its default, sets every required one, and no other key."""
    options = getattr(driver_class, "options", None)
    assert isinstance(options, Options), "the driver declares no `options`; declare them with agent.driver_api.Options"
    problems = sample_problems(options, driver_class.sample_config(), driver_class.kind)
    assert not problems, "sample.toml disagrees with the declared options: " + "; ".join(problems)


ALL_CHECKS = (
    check_validates_options_without_io,
    check_start_stop,
    check_start_never_raises,
    check_no_emission_after_stop,
    check_recovers_after_unplug,
    check_resyncs_after_garbage,
)


def run_all(driver_class: type[Driver], harness: Harness, workdir: Path) -> None:
    """Every check, each in its own subfolder of workdir (for a quick run outside pytest)."""
    for check in ALL_CHECKS:
        check(driver_class, harness, workdir / check.__name__)
    check_readme_includes_sample(driver_class, harness.readme)
    check_sample_matches_options(driver_class)
    check_imports_current_api(driver_class)
