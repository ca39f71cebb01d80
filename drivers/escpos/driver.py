"""ESC/POS receipt tap driver: thin serial glue around the pure tokenizer (protocol.py) and reader (receipt.py)."""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections import Counter
from typing import Any, ClassVar

import serial

from agent.driver_api import DriverOptionError, Sink
from agent.driver_api.options import (
    Option,
    Options,
    choice,
    codec,
    currency,
    flag,
    integer,
    number,
    serial_port,
    table,
)
from agent.driver_api.serial import PORT_ERRORS, SerialDriver
from drivers.escpos.layouts import LAYOUTS, layout_patterns
from drivers.escpos.protocol import EscPosParser, PrintedReceipt
from drivers.escpos.receipt import CompiledPatterns, ReceiptPatterns, receipt_to_basket

READ_TIMEOUT_S = 0.1


def _regexes(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, str) for v in value)


def _pattern(field: dataclasses.Field[Any]) -> Option:
    """One `patterns` key, declared from the ReceiptPatterns field it sets (its default included).

    `items` has no fixed default: unset, the chosen `layout` decides which item lines are read.
    """
    if field.name == "items":
        return Option("items", None, _regexes, "a list of regex strings", 'use ["^(?P<name>...)$"] or a layout', tuple)
    return Option(field.name, field.default, lambda v: isinstance(v, str), "a string", "write the regex as a string")


def compiled_patterns(layout: str, patterns: dict[str, Any]) -> CompiledPatterns:
    """The layout's patterns with the shop's own on top, compiled (ValueError names the bad key)."""
    return layout_patterns(layout, **{k: v for k, v in patterns.items() if v is not None}).compile()


def _compiles(values: dict[str, Any]) -> None:
    """Every pattern compiles and can only match with each group it needs (drivers/escpos/pattern_check.py)."""
    try:
        compiled_patterns(values["layout"], values["patterns"])
    except ValueError as exc:
        key = str(exc).split(":")[0].split("[")[0]
        raise DriverOptionError(f"patterns.{key}", str(exc), "fix the regex (test it on a printed receipt)") from exc


# The README documents every pattern; sample.toml shows the ones shops change most.
PATTERNS = Options(*(_pattern(f) for f in dataclasses.fields(ReceiptPatterns)))


class EscPosDriver(SerialDriver):
    """Reads the POS-to-printer serial stream and emits one Basket per printed receipt."""

    kind: ClassVar[str] = "escpos"
    options: ClassVar[Options] = Options(
        serial_port(),
        integer("baudrate", 9600, low=1, fix="use the printer's, e.g. 9600"),
        flag("rtscts", False),
        codec("code_page", "cp437", fix='use e.g. "cp437" or "cp1252"'),
        currency(),
        number("idle_flush_s", 2.0, low=0, high=60, above=True),
        choice("layout", "auto", tuple(LAYOUTS), fix=f"use one of {', '.join(LAYOUTS)}"),
        table("patterns", PATTERNS, sample_lists_all=False),
        checks=(_compiles,),
    )

    def __init__(
        self,
        name: str,
        port: str,
        *,
        baudrate: int,
        rtscts: bool,
        code_page: str,
        currency: str,
        idle_flush_s: float,
        layout: str = "auto",
        patterns: dict[str, Any] | None = None,
    ) -> None:
        # Reads time out at most half the idle flush, so a receipt is closed that soon after the printer
        # falls silent (a receipt's time is when it is accepted).
        super().__init__(
            name,
            port,
            baudrate,
            read_timeout_s=min(READ_TIMEOUT_S, idle_flush_s / 2),
            serial_options={"rtscts": rtscts},
        )
        self.rtscts = rtscts
        self.code_page, self.currency, self.idle_flush_s = code_page, currency, idle_flush_s
        self.layout = layout
        self.patterns: CompiledPatterns = compiled_patterns(layout, patterns or {})
        self.outcomes: Counter[str] = Counter()  # sales, refunds, voids, flag reasons, unread
        self.flagged: Counter[str] = Counter()  # flagged baskets by reason (no_items, total_mismatch)
        self._parser = EscPosParser(code_page)

    def _health_extra(self) -> dict[str, Any]:
        with self._health.lock:
            keys = ("sales", "refunds", "voids", "total_mismatch", "no_items", "unread", "flushed_at_stop")
            extra: dict[str, Any] = {k: self.outcomes[k] for k in keys}
            # Flagged baskets stay local and out of every release; the owner sees how many, and why.
            extra["flagged"] = {r: n for r, n in sorted(self.flagged.items()) if n}
        parser = self._parser
        extra.update(drawer_kicks=parser.drawer_kicks, images_skipped=parser.images, barcodes=parser.barcodes)
        return extra

    def _serve(self, sink: Sink, port: serial.SerialBase) -> None:
        parser = self._parser
        self._handle(sink, parser, parser.flush())  # a receipt cut off by the outage ends here
        parser.reset()
        last_data = time.monotonic()
        while not self._stop.is_set():
            data = port.read(port.in_waiting or 1)
            if data:
                last_data = time.monotonic()
                self._handle(sink, parser, parser.feed(data))
            elif time.monotonic() - last_data >= self.idle_flush_s:
                self._handle(sink, parser, parser.flush())
                last_data = time.monotonic()
        self._drain(sink, port, parser)

    def _drain(self, sink: Sink, port: serial.SerialBase, parser: EscPosParser) -> None:
        """On a clean stop: read what the port already holds, then emit what is complete.

        Complete means: a receipt already cut (held only for a drawer kick that may follow the cut), and an
        uncut receipt whose text reads as a basket (it has its total line). Anything else (a receipt cut off
        before its total) is counted as a bad frame `incomplete_at_stop`, never guessed into a basket.
        """
        with contextlib.suppress(*PORT_ERRORS):
            while waiting := port.in_waiting:
                self._handle(sink, parser, parser.feed(port.read(waiting)))
        complete = []
        for receipt in parser.flush():
            if receipt.cut or receipt_to_basket(receipt, self.patterns, self.currency).basket is not None:
                complete.append(receipt)
            else:
                with self._health.lock:
                    self.outcomes["unread"] += 1
                self._report(sink, "bad_frame", "incomplete_at_stop")
        with self._health.lock:
            self.outcomes["flushed_at_stop"] += len(complete)
        self._handle(sink, parser, complete)

    def stop(self) -> None:
        """Stop reading: the reader first drains and emits what is complete; after this returns nothing more."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        super().stop()

    def _handle(self, sink: Sink, parser: EscPosParser, receipts: list[PrintedReceipt]) -> None:
        reported = sum(self.outcomes[f"bad:{r}"] for r in parser.bad_reasons)
        if parser.bad_frames > reported:
            for reason, count in parser.bad_reasons.items():
                for _ in range(count - self.outcomes[f"bad:{reason}"]):
                    self._report(sink, "bad_frame", reason)
                self.outcomes[f"bad:{reason}"] = count
        for receipt in receipts:
            result = receipt_to_basket(receipt, self.patterns, self.currency)
            with self._health.lock:
                self._health.frames += 1
                if result.basket is None:
                    self.outcomes["unread"] += 1
                    self._health.bad_frames += 1
                else:
                    self.outcomes[{"sale": "sales", "refund": "refunds", "void": "voids"}[result.basket.kind]] += 1
                    if result.basket.flagged:
                        self.outcomes[result.basket.flagged] += 1
                        self.flagged[result.basket.flagged] += 1
            if result.basket is None:
                self._report(sink, "bad_frame", result.reason)
                continue
            if not self._emit(sink, result.basket):
                return
        with self._health.lock:
            self._health.bad_frames = parser.bad_frames + self.outcomes["unread"]
