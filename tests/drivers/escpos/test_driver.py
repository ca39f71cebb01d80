"""The ESC/POS driver over a real pty from firmware_sim.escpos: receipts, faults, unplug/replug, stop, a day."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from agent.clock import AcceleratedClock
from agent.driver_api import Basket, DriverOptionError
from agent.driver_api.kit import RecordingSink
from drivers.escpos.driver import EscPosDriver
from firmware_sim import escpos as sim
from firmware_sim.pty_device import PtyDevice
from firmware_sim.traffic import HOUR_NS, parse_utc

BASKET = sim.SimBasket("4711", parse_utc("2026-11-16T10:00:00Z"), (sim.SimLine("Brötchen", "bakery", 2, 45),),
                       "sale", "cash", "baeckerei")  # fmt: skip


def make_driver(link: Path, **options: object) -> EscPosDriver:
    driver = EscPosDriver.from_options("till", {"port": str(link), "idle_flush_s": 0.2, **options})
    driver.backoff_initial_s, driver.backoff_max_s = 0.02, 0.2
    return driver


def poll(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def baskets(sink: RecordingSink) -> list[Basket]:
    return [r for r in sink.snapshot()[0] if isinstance(r, Basket)]


def test_options_errors_name_the_key() -> None:
    with pytest.raises(DriverOptionError) as err:
        EscPosDriver.from_options("till", {"port": "/dev/x", "code_page": "cp9999"})
    assert err.value.key == "code_page"
    with pytest.raises(DriverOptionError) as err:
        EscPosDriver.from_options("till", {"port": "/dev/x", "patterns": {"total": "(?P<total>["}})
    assert err.value.key == "patterns.total"


def test_a_printed_receipt_becomes_a_basket_with_currency(tmp_path: Path) -> None:
    pty = PtyDevice(tmp_path / "printer")
    driver, sink = make_driver(pty.link_path, currency="eur"), RecordingSink()
    driver.start(sink)
    try:
        poll(lambda: driver.health()["connected"])
        pty.write(sim.encode_receipt(BASKET))
        sink.wait_for(lambda: len(sink.readings) == 1, 5, "the basket")
    finally:
        driver.stop()
        pty.close()
    (basket,) = baskets(sink)
    assert (basket.source_id, basket.total_cents, basket.payment, basket.currency) == ("4711", 90, "cash", "EUR")
    assert driver.health()["drawer_kicks"] == 1 and driver.health()["sales"] == 1


def test_unplug_and_replug_reconnects_and_reads_again(tmp_path: Path) -> None:
    pty = PtyDevice(tmp_path / "printer")
    driver, sink = make_driver(pty.link_path), RecordingSink()
    driver.start(sink)
    try:
        poll(lambda: driver.health()["connected"])
        pty.write(sim.encode_receipt(BASKET))
        sink.wait_for(lambda: len(sink.readings) == 1, 5, "the first basket")
        pty.unplug()
        sink.wait_for(lambda: len(sink.problems) == 1, 5, "the unplug problem")
        pty.replug()
        poll(lambda: driver.health()["connected"])
        pty.write(sim.encode_receipt(BASKET.__class__("4712", BASKET.t_ns, BASKET.lines, layout="corner_store")))
        sink.wait_for(lambda: len(sink.readings) == 2, 5, "the basket after replug")
    finally:
        driver.stop()
        pty.close()
    assert [b.source_id for b in baskets(sink)] == ["4711", "4712"]
    assert driver.health()["reconnects"] == 1


def test_nothing_is_emitted_after_stop(tmp_path: Path) -> None:
    pty = PtyDevice(tmp_path / "printer")
    driver, sink = make_driver(pty.link_path), RecordingSink()
    driver.start(sink)
    poll(lambda: driver.health()["connected"])
    driver.stop()
    pty.write(sim.encode_receipt(BASKET))
    time.sleep(0.5)  # nothing to await: the claim is that nothing happens
    pty.close()
    assert sink.snapshot() == ([], [], [])


def test_a_simulated_hour_of_receipts_matches_the_truth(tmp_path: Path) -> None:
    start = parse_utc("2026-11-16T12:00:00Z")
    day = sim.generate_baskets(11, start, start + HOUR_NS, layout="mixed", baskets_per_peak_hour=15)
    clock = AcceleratedClock.starting_now(start, 3600 * 4)  # one hour in 0.25 s
    printer = sim.EscPosSimulator(tmp_path / "printer", day, clock)
    driver, sink = make_driver(printer.device.link_path), RecordingSink()
    driver.start(sink)
    try:
        poll(lambda: driver.health()["connected"])
        printer.start()
        sink.wait_for(lambda: len(sink.readings) == len(day), 15, "every basket")
    finally:
        driver.stop()
        printer.stop()
    truth = sim.ground_truth(day, start, start + HOUR_NS)
    got = baskets(sink)
    assert [b.source_id for b in got] == [b["receipt_no"] for b in truth["baskets"]]
    sales = [b for b in got if b.kind == "sale"]
    assert (
        sum(ln.line_total_cents for b in sales for ln in b.lines)
        == truth["totals"]["2026-11-16T12:00:00Z"]["revenue_cents"]
    )
    assert not [b for b in got if b.flagged]


def test_the_cli_writes_truth_in_the_documented_shape(tmp_path: Path) -> None:
    truth_path = tmp_path / "truth.json"
    args = ["--link", str(tmp_path / "p"), "--seed", "3", "--start", "2026-11-16T09:00:00Z", "--hours", "2",
            "--factor", "360000", "--truth", str(truth_path), "--layout", "boulangerie"]  # fmt: skip
    assert sim.main(args) == 0
    truth = json.loads(truth_path.read_text("utf-8"))
    assert set(truth["hours"]) == {"2026-11-16T09:00:00Z", "2026-11-16T10:00:00Z"}
    assert set(truth["hours"]["2026-11-16T09:00:00Z"]) == set(sim.CATEGORIES)
    sold = sum(c["revenue_cents"] for h in truth["hours"].values() for c in h.values())
    assert sold == sum(t["revenue_cents"] for t in truth["totals"].values()) > 0
    assert truth["completed"] is True and truth["catalogue"]["Crème brûlée"] == "bakery"


def run_printing(tmp_path: Path, data: bytes, wait_for: int, **options: object) -> tuple[EscPosDriver, RecordingSink]:
    """Start the driver on a pty, print `data`, wait for `wait_for` baskets, then stop cleanly."""
    pty = PtyDevice(tmp_path / "printer")
    driver = EscPosDriver.from_options("till", {"port": str(pty.link_path), **options})
    driver.backoff_initial_s, driver.backoff_max_s = 0.02, 0.2
    sink = RecordingSink()
    driver.start(sink)
    try:
        poll(lambda: driver.health()["connected"])
        sent, deadline = 0, time.monotonic() + 10
        while sent < len(data):  # at the pace the driver reads, like a printer's flow control
            assert time.monotonic() < deadline, "the driver stopped reading"
            sent += pty.write(data[sent : sent + 1024]) or (time.sleep(0.005) or 0)
        if wait_for:
            sink.wait_for(lambda: len(sink.readings) >= wait_for, 10, f"{wait_for} baskets")
    finally:
        driver.stop()
        pty.close()
    return driver, sink


def test_a_receipt_cut_half_a_second_before_a_clean_stop_is_stored(tmp_path: Path) -> None:
    pty = PtyDevice(tmp_path / "printer")
    driver = EscPosDriver.from_options("till", {"port": str(pty.link_path)})  # idle_flush_s = 2 (the default)
    sink = RecordingSink()
    driver.start(sink)
    try:
        poll(lambda: driver.health()["connected"])
        pty.write(sim.encode_receipt(BASKET))
        poll(lambda: driver._parser._held is not None)  # read and cut: held for a drawer kick after the cut
        time.sleep(0.5)  # the receipt's age at stop, as in the report
    finally:
        driver.stop()
        pty.close()
    assert [b.source_id for b in baskets(sink)] == ["4711"]
    assert driver.health()["flushed_at_stop"] == 1


def test_at_stop_an_uncut_receipt_with_its_total_is_stored_and_one_without_is_counted(tmp_path: Path) -> None:
    pty = PtyDevice(tmp_path / "printer")
    driver = EscPosDriver.from_options("till", {"port": str(pty.link_path), "idle_flush_s": 30})
    sink = RecordingSink()
    driver.start(sink)
    try:
        poll(lambda: driver.health()["connected"])
        pty.write(b"\x1b@RECEIPT # 901\nTea   1.50\nTOTAL  1.50\nCASH  2.00\n")
        poll(lambda: len(driver._parser._lines) == 4)
    finally:
        driver.stop()
    assert [(b.source_id, b.total_cents) for b in baskets(sink)] == [("901", 150)]
    driver.start(sink)
    try:
        poll(lambda: driver.health()["connected"])
        pty.write(b"\x1b@RECEIPT # 902\nTea   1.50\nMilk  0.99\n")
        poll(lambda: len(driver._parser._lines) == 3)
    finally:
        driver.stop()
        pty.close()
    assert len(baskets(sink)) == 1 and sink.bad == ["incomplete_at_stop"]


def test_flagged_baskets_are_counted_by_reason_in_health(tmp_path: Path) -> None:
    data = (b"\x1b@RECEIPT # 1\nTOTAL  1.50\n\x1dV\x00"  # no items
            b"\x1b@RECEIPT # 2\nTea   1.50\nTOTAL  9.99\n\x1dV\x00"  # items do not add up
            b"\x1b@RECEIPT # 3\nTea   1.50\nTOTAL  1.50\n\x1dV\x00\x1b@")  # fmt: skip
    driver, sink = run_printing(tmp_path, data, 3, idle_flush_s=0.2)
    health = driver.health()
    assert health["flagged"] == {"no_items": 1, "total_mismatch": 1}
    assert (health["no_items"], health["total_mismatch"], health["sales"]) == (1, 1, 3)
    assert [b.flagged for b in baskets(sink)] == ["no_items", "total_mismatch", ""]


def test_a_layout_word_selects_the_shipped_layout(tmp_path: Path) -> None:
    from firmware_sim import escpos_layouts

    receipts = escpos_layouts.generate(seed=11, layout="two_line", count=30)
    driver, sink = run_printing(tmp_path, b"".join(d for _, d in receipts), 30, layout="two_line", idle_flush_s=0.2)
    got = baskets(sink)
    assert [b.source_id for b in got] == [s.receipt_no for s, _ in receipts]
    assert [len(b.lines) for b in got] == [len(s.lines) for s, _ in receipts]
    assert driver.health()["flagged"] == {}


def test_layout_and_pattern_options_are_checked_at_config_time() -> None:
    with pytest.raises(DriverOptionError) as err:
        EscPosDriver.from_options("till", {"port": "/dev/x", "layout": "fancy"})
    assert err.value.key == "layout"
    with pytest.raises(DriverOptionError) as err:
        EscPosDriver.from_options(
            "till", {"port": "/dev/x", "patterns": {"items": [r"^(?P<name>\S+)?\s+(?P<total>{amount})$"]}}
        )
    assert err.value.key == "patterns.items" and "left out" in err.value.problem
