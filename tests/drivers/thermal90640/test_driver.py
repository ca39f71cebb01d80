"""The GY-MCU90640 driver over real ptys from firmware_sim: options, counting, faults, reconnects, stop."""

from __future__ import annotations

import threading
import time
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from agent.driver_api import DoorCount, DriverOptionError
from agent.driver_api import recording as driver_kit
from drivers.thermal90640.driver import FrameRateMeter, Thermal90640Driver
from drivers.thermal90640.protocol import ThermalFrame
from firmware_sim.pty_device import PtyDevice
from firmware_sim.thermal90640 import (
    AUTO_MODE_COMMAND,
    ENTRY,
    EXIT,
    QUERY_EMISSIVITY_COMMAND,
    RATE_COMMANDS,
    FaultPlan,
    Scenario,
    Thermal90640Simulator,
    crossing_walker,
    encode_frame,
    render_frames,
    scenario,
    score_counter,
)

README = Path(__file__).parents[3] / "drivers" / "thermal90640" / "README.md"


class RecordingSink(driver_kit.RecordingSink):
    """The SDK's recording sink, with the door totals and the default wait these tests use."""

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0, what: str = "the driver") -> None:
        super().wait_for(predicate, timeout, what)

    def totals(self) -> tuple[int, int]:
        counts = [r for r in self.snapshot()[0] if isinstance(r, DoorCount)]
        return sum(r.entries for r in counts), sum(r.exits for r in counts)


def poll(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def options(**extra: object) -> dict[str, object]:
    return {"port": "/dev/serial/by-id/usb-x", "door": "front", **extra}


@pytest.mark.parametrize(
    ("bad", "key"),
    [
        ({"door": "front"}, "port"),
        ({"port": " ", "door": "front"}, "port"),
        ({"port": "/dev/x"}, "door"),
        (options(door="Front Door"), "door"),
        (options(baudrate=57600), "baudrate"),
        (options(baudrate=True), "baudrate"),
        (options(rate_hz=16), "rate_hz"),
        (options(rate_hz=8), "rate_hz"),  # 8 Hz needs 460800 baud
        (options(baudrate=9600, rate_hz=1), "rate_hz"),
        (options(rate_hz=2), "rate_hz"),  # too slow to count people
        (options(baudrate=9600, rate_hz=0.5), "rate_hz"),
        (options(entry_direction="in"), "entry_direction"),
        (options(counting=3), "counting"),
        (options(counting={"lines": [0.7, 0.3]}), "counting.lines"),
        (options(counting={"max_speed_px_s": 0}), "counting.max_speed_px_s"),
        (options(counting={"max_missing_s": -1}), "counting.max_missing_s"),
        (options(counting={"min_pixels": 2.5}), "counting.min_pixels"),
        (options(counting={"threshold": 2}), "counting.threshold"),
        (options(colour="blue"), "colour"),
    ],
)
def test_bad_options_name_the_key(bad: dict[str, object], key: str) -> None:
    with pytest.raises(DriverOptionError) as caught:
        Thermal90640Driver.from_options("front_door", bad)
    assert caught.value.key == key
    assert str(caught.value).startswith(f"{key}: ")


def test_counting_options_reach_the_counter() -> None:
    driver = Thermal90640Driver.from_options(
        "front_door",
        options(baudrate=460800, rate_hz=8, counting={"lines": [0.3, 0.7], "min_delta_c": 2, "max_missing_s": 0.5}),
    )
    assert (driver.counting.line_a, driver.counting.line_b, driver.counting.min_delta) == (0.3, 0.7, 2.0)
    assert driver.counting.max_missing_s == 0.5 and driver.rate_hz == 8.0
    assert driver.counter.rate_hz == 8.0 and driver.counter.params.max_missing(driver.counter.rate_hz) == 4


@pytest.mark.parametrize(("rate_hz", "baudrate"), [(4, 115200), (8, 460800)])
def test_the_counters_per_frame_limits_follow_rate_hz(rate_hz: int, baudrate: int) -> None:
    driver = Thermal90640Driver.from_options("front_door", options(rate_hz=rate_hz, baudrate=baudrate))
    assert driver.counter.rate_hz == rate_hz
    assert driver.counter.params.max_jump(rate_hz) == 3.0 + 60.0 / rate_hz


@pytest.mark.parametrize(
    ("key", "replacement"),
    [("max_jump", "max_speed_px_s"), ("max_missing", "max_missing_s"), ("warmup_frames", "warmup_s"),
     ("background_rate", "background_s")],
)  # fmt: skip
def test_an_old_per_frame_key_is_refused_with_its_per_second_replacement(key: str, replacement: str) -> None:
    with pytest.raises(DriverOptionError) as caught:
        Thermal90640Driver.from_options("front_door", options(counting={key: 12}))
    assert caught.value.key == f"counting.{key}"
    assert replacement in caught.value.fix and "rate_hz" in caught.value.fix


@pytest.mark.parametrize("name", ["fast_walkers", "running_children", "fast_pairs", "sprint_half_second"])
def test_the_default_options_count_fast_walkers_at_the_default_rate(name: str) -> None:
    driver = Thermal90640Driver.from_options("front_door", options())
    assert driver.rate_hz == 4.0  # the default: what a shop that sets nothing runs
    score = score_counter(driver.count, scenario(name, 1, driver.rate_hz))
    assert score.accuracy >= 0.95, (score.missed, score.false)


def test_sample_config_validates_and_is_in_the_readme() -> None:
    sample = Thermal90640Driver.sample_config()
    table = tomllib.loads(sample)["drivers"]["front_door"]
    driver = Thermal90640Driver.from_options("front_door", {k: v for k, v in table.items() if k != "kind"})
    assert table["kind"] == Thermal90640Driver.kind
    assert driver.doors() == ["front"]
    assert sample in README.read_text()


def scene(*directions: str, gap_s: float = 2.5, fps: float = 4.0) -> Scenario:
    """A short scene: one walker per direction, `gap_s` apart, after a second of empty floor (at the default rate)."""
    rng = np.random.default_rng(7)
    walkers = tuple(crossing_walker(rng, 1.0 + gap_s * i, d, speed=12.0) for i, d in enumerate(directions))
    return Scenario("test", 7, fps, 1.0 + gap_s * len(directions) + 1.5, walkers)


@pytest.fixture
def device(tmp_path: Path) -> Iterator[PtyDevice]:
    with PtyDevice(tmp_path / "by-id" / "usb-GY-MCU90640-if00") as pty:
        yield pty


def start_driver(link: Path, **extra: object) -> tuple[Thermal90640Driver, RecordingSink]:
    driver = Thermal90640Driver.from_options("front_door", {"port": str(link), "door": "front", **extra})
    driver.backoff_initial_s, driver.backoff_max_s = 0.02, 0.2
    sink = RecordingSink()
    driver.start(sink)
    return driver, sink


def wait_for_commands(device: PtyDevice, expected: bytes, seen: bytearray) -> None:
    def arrived() -> bool:
        seen.extend(device.read_available())
        return expected in seen

    poll(arrived)


def play(device: PtyDevice, frames: np.ndarray, lossless: bool = True) -> None:
    """Write frames at a pace the pty buffer can take (a real module at 460800 baud sends 30 a second)."""
    for frame in frames:
        device.write(encode_frame(frame, 2600))
        time.sleep(0.004)
    assert device.dropped_bytes == 0 or not lossless


def test_driver_sends_auto_mode_rate_and_emissivity_query(device: PtyDevice) -> None:
    driver, _ = start_driver(device.link_path, baudrate=460800, rate_hz=8)
    try:
        seen = bytearray()
        wait_for_commands(device, QUERY_EMISSIVITY_COMMAND, seen)
        assert bytes(seen) == AUTO_MODE_COMMAND + RATE_COMMANDS[8] + QUERY_EMISSIVITY_COMMAND
    finally:
        driver.stop()


def test_driver_counts_people_from_the_simulator_on_a_pty(tmp_path: Path) -> None:
    walk = scene(ENTRY, EXIT, ENTRY, ENTRY, EXIT)
    sim = Thermal90640Simulator(tmp_path / "thermal", render_frames(walk), walk.fps, speed=12, auto_mode=False)
    driver, sink = start_driver(tmp_path / "thermal")
    try:
        sim.start()  # the module streams only once the driver has switched it to auto mode
        sink.wait_for(lambda: sink.totals() == (3, 2))
        poll(sim.done)
        assert all(isinstance(r, DoorCount) and r.door == "front" and r.entries + r.exits == 1 for r in sink.readings)
        assert AUTO_MODE_COMMAND in sim.host_commands()
        assert driver.parser.emissivity == 0.95  # the query's reply came back among the frames
        assert driver.health()["connected"]
        assert (sink.bad, sim.device.dropped_bytes) == ([], 0)
    finally:
        driver.stop()
        sim.stop()
    assert sink.totals() == (3, 2)


def test_entry_direction_up_swaps_entries_and_exits(device: PtyDevice) -> None:
    driver, sink = start_driver(device.link_path, entry_direction="up")
    try:
        wait_for_commands(device, AUTO_MODE_COMMAND, bytearray())
        play(device, render_frames(scene(ENTRY, ENTRY, EXIT)))
        sink.wait_for(lambda: sink.totals() == (1, 2))
    finally:
        driver.stop()


def sideways_walk(rightwards: bool) -> np.ndarray:
    """Frames of one warm blob walking along the columns of the 24 x 32 image."""
    rows, cols = np.mgrid[0:24, 0:32]
    rng = np.random.default_rng(1)
    path = np.arange(-6.0, 38.0, 1.5)
    empty = [np.zeros((24, 32))] * 10
    blobs = [9.0 * np.exp(-((cols - x) ** 2 + (rows - 12.0) ** 2) / 10.0) for x in (path if rightwards else path[::-1])]
    return np.array([np.round((22.0 + f + rng.normal(0, 0.15, (24, 32))) * 100) for f in empty + blobs + empty]).astype(
        np.int16
    )


@pytest.mark.parametrize(("direction", "expected"), [("right", (1, 0)), ("left", (0, 1))])
def test_sideways_mounting_counts_walks_along_the_columns(direction: str, expected: tuple[int, int]) -> None:
    driver = Thermal90640Driver.from_options("front_door", options(entry_direction=direction))
    counts = [driver.count(frame) for frame in sideways_walk(rightwards=True)]
    assert (sum(c[0] for c in counts), sum(c[1] for c in counts)) == expected


def test_corrupt_frames_are_counted_while_counting_continues(tmp_path: Path) -> None:
    walk = scene(ENTRY, EXIT, ENTRY)
    faults = FaultPlan(("garbage", "checksum", "truncate"), rate=0.1)
    sim = Thermal90640Simulator(tmp_path / "thermal", render_frames(walk), walk.fps, speed=12, faults=faults, seed=3)
    driver, sink = start_driver(tmp_path / "thermal")
    try:
        wait_for_commands(sim.device, AUTO_MODE_COMMAND, bytearray())
        sim.start()
        sink.wait_for(lambda: sink.totals() == (2, 1))
        poll(sim.done)
        poll(lambda: driver.health()["frames"] == walk.n_frames())
        assert set(sink.bad) == {"garbage", "checksum", "truncated"}
        assert driver.health()["bad_frames"] == len(sink.bad)
    finally:
        driver.stop()
        sim.stop()


def test_unplug_and_replug_reconnects_and_counts_again(device: PtyDevice) -> None:
    frames = render_frames(scene(ENTRY, EXIT))
    half = len(frames) // 2  # the first walker has crossed, the second not yet appeared
    driver, sink = start_driver(device.link_path)
    try:
        wait_for_commands(device, AUTO_MODE_COMMAND, bytearray())
        play(device, frames[:half])
        sink.wait_for(lambda: sink.totals() == (1, 0))

        device.unplug()
        poll(lambda: not driver.health()["connected"])
        sink.wait_for(lambda: len(sink.problems) == 1)
        device.replug()

        wait_for_commands(device, AUTO_MODE_COMMAND, bytearray())  # auto mode is re-sent on every connection
        poll(lambda: driver.health()["connected"])
        assert driver.health()["reconnects"] == 1
        play(device, frames[half:])
        sink.wait_for(lambda: sink.totals() == (1, 1))
    finally:
        driver.stop()


def test_driver_waits_for_a_missing_port_and_connects_when_it_appears(tmp_path: Path) -> None:
    link = tmp_path / "later"
    driver, sink = start_driver(link)
    try:
        with PtyDevice(link) as pty:
            wait_for_commands(pty, AUTO_MODE_COMMAND, bytearray())
            play(pty, render_frames(scene(EXIT)))
            sink.wait_for(lambda: sink.totals() == (0, 1))
    finally:
        driver.stop()


def test_nothing_is_emitted_after_stop(device: PtyDevice) -> None:
    frames = render_frames(scene(ENTRY, ENTRY, ENTRY, ENTRY, gap_s=1.5))
    driver, sink = start_driver(device.link_path)
    wait_for_commands(device, AUTO_MODE_COMMAND, bytearray())
    writer = threading.Thread(target=play, args=(device, frames, False))
    writer.start()
    sink.wait_for(lambda: sink.totals()[0] >= 1)
    driver.stop()  # while frames with more crossings are still arriving
    before = (list(sink.readings), list(sink.bad), list(sink.problems))
    writer.join()
    device.write(b"junk" * 10)
    device.unplug()
    time.sleep(0.3)  # nothing to await: the claim is that nothing happens
    assert (sink.readings, sink.bad, sink.problems) == before
    assert not driver.health()["connected"]


def test_the_frame_rate_meter_measures_frames_per_second_over_a_window() -> None:
    meter = FrameRateMeter(window=8)
    rates = [meter.frame(i * 0.5) for i in range(9)]
    assert rates[:-1] == [None] * 8 and rates[-1] == pytest.approx(2.0)


def test_the_frame_rate_meter_starts_afresh_after_a_gap() -> None:
    meter = FrameRateMeter(window=8, max_gap_s=2.0)
    for i in range(5):
        assert meter.frame(i * 0.25) is None
    rates = [meter.frame(30.0 + i * 0.125) for i in range(9)]  # a reconnect: the 29 s gap is no slow module
    assert rates[-1] == pytest.approx(8.0)


def module_streaming_at(
    driver: Thermal90640Driver, sink: RecordingSink, rate_hz: float, start_s: float = 0.0, n: int = 70
) -> None:
    """Hand the driver `n` empty frames, as if they arrived `1 / rate_hz` apart from `start_s` on."""
    frame = ThermalFrame(np.full((24, 32), 2200, dtype=np.int16), 2600)
    for i in range(n):
        driver._handle(sink, [frame], {}, start_s + i / rate_hz)


def test_a_module_slower_than_asked_is_counted_for_its_real_rate_and_reported() -> None:
    driver = Thermal90640Driver.from_options("front_door", options(baudrate=460800, rate_hz=8))
    sink = RecordingSink()
    module_streaming_at(driver, sink, 4.0)
    assert driver.counter.rate_hz == pytest.approx(4.0)  # a runner's 12 rows a frame are followed again
    assert len(sink.problems) == 1 and "4.0 Hz, not the 8 Hz asked" in sink.problems[0]
    assert driver.health()["frame_rate_hz"] == pytest.approx(4.0)
    assert driver.health()["last_error"] == sink.problems[0]
    module_streaming_at(driver, sink, 8.0, start_s=18.0)  # back at the asked rate: its limits, no new problem
    assert driver.counter.rate_hz == 8.0 and len(sink.problems) == 1


def test_a_module_faster_than_asked_keeps_the_asked_limits() -> None:
    driver = Thermal90640Driver.from_options("front_door", options())
    sink = RecordingSink()
    module_streaming_at(driver, sink, 8.0)
    assert (driver.counter.rate_hz, sink.problems) == (4.0, [])  # the 4 Hz limits also hold at 8 Hz


def test_a_module_below_4_hz_is_reported_and_counted_with_the_4_hz_limits() -> None:
    driver = Thermal90640Driver.from_options("front_door", options())
    sink = RecordingSink()
    module_streaming_at(driver, sink, 2.0)
    assert driver.counter.rate_hz == 4.0
    assert len(sink.problems) == 1 and "below 4 Hz runners are missed" in sink.problems[0]
