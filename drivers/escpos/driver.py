"""ESC/POS receipt tap driver: thin serial glue around the pure tokenizer (protocol.py) and reader (receipt.py)."""

from __future__ import annotations

import codecs
import contextlib
import time
from collections import Counter
from collections.abc import Mapping
from importlib import resources
from typing import Any, ClassVar

import serial

from agent.driver_api import DriverOptionError, Sink
from agent.serial_driver import PORT_ERRORS, SerialDriver
from drivers.escpos.layouts import LAYOUTS, layout_patterns
from drivers.escpos.protocol import EscPosParser, PrintedReceipt
from drivers.escpos.receipt import CompiledPatterns, ReceiptPatterns, receipt_to_basket

OPTIONS = ("port", "baudrate", "rtscts", "code_page", "currency", "idle_flush_s", "layout", "patterns")
PATTERN_KEYS = tuple(f for f in ReceiptPatterns.__dataclass_fields__)
READ_TIMEOUT_S = 0.1


def _patterns(raw: object, layout: object = "auto") -> CompiledPatterns:
    if not isinstance(raw, Mapping):
        raise DriverOptionError("patterns", "is not a table", "write [drivers.<name>.patterns]")
    for key in raw:
        if key not in PATTERN_KEYS:
            raise DriverOptionError(f"patterns.{key}", "unknown pattern", f"use one of {', '.join(PATTERN_KEYS)}")
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key == "items":
            if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
                raise DriverOptionError("patterns.items", "is not a list of regex strings", 'use ["^(?P<name>...)$"]')
            values[key] = tuple(value)
        elif not isinstance(value, str):
            raise DriverOptionError(f"patterns.{key}", f"{value!r} is not a string", "write the regex as a string")
        else:
            values[key] = value
    if not isinstance(layout, str) or layout not in LAYOUTS:
        raise DriverOptionError("layout", f"{layout!r} is not a shipped layout", f"use one of {', '.join(LAYOUTS)}")
    try:
        return layout_patterns(layout, **values).compile()
    except ValueError as exc:
        key = str(exc).split(":")[0].split("[")[0]
        raise DriverOptionError(f"patterns.{key}", str(exc), "fix the regex (test it on a printed receipt)") from exc


class EscPosDriver(SerialDriver):
    """Reads the POS-to-printer serial stream and emits one Basket per printed receipt."""

    kind: ClassVar[str] = "escpos"

    def __init__(
        self,
        name: str,
        port: str,
        *,
        baudrate: int = 9600,
        rtscts: bool = False,
        code_page: str = "cp437",
        currency: str = "",
        idle_flush_s: float = 2.0,
        patterns: CompiledPatterns | None = None,
        backoff_initial_s: float = 0.1,
        backoff_max_s: float = 5.0,
    ) -> None:
        # Reads time out at most half the idle flush, so a receipt is closed that soon after the printer
        # falls silent (a receipt's time is when it is accepted).
        super().__init__(
            name,
            port,
            baudrate,
            read_timeout_s=min(READ_TIMEOUT_S, idle_flush_s / 2),
            backoff_initial_s=backoff_initial_s,
            backoff_max_s=backoff_max_s,
            serial_options={"rtscts": rtscts},
        )
        self.rtscts = rtscts
        self.code_page, self.currency, self.idle_flush_s = code_page, currency, idle_flush_s
        self.patterns = patterns or ReceiptPatterns().compile()
        self.outcomes: Counter[str] = Counter()  # sales, refunds, voids, flag reasons, unread
        self.flagged: Counter[str] = Counter()  # flagged baskets by reason (no_items, total_mismatch)
        self._parser = EscPosParser(code_page)

    @classmethod
    def from_options(cls, name: str, options: Mapping[str, Any]) -> EscPosDriver:
        """Validate options without any I/O; raise DriverOptionError on the first bad key."""
        for key in options:
            if key not in (*OPTIONS, "kind"):
                raise DriverOptionError(key, "unknown option", f"remove it; escpos takes {', '.join(OPTIONS)}")
        port = options.get("port")
        if not isinstance(port, str) or not port.strip():
            raise DriverOptionError("port", "missing or empty", 'set port = "/dev/serial/by-id/usb-..." (or a URL)')
        baudrate = options.get("baudrate", 9600)
        if isinstance(baudrate, bool) or not isinstance(baudrate, int) or baudrate <= 0:
            raise DriverOptionError(
                "baudrate", f"{baudrate!r} is not a positive integer", "use the printer's, e.g. 9600"
            )
        rtscts = options.get("rtscts", False)
        if not isinstance(rtscts, bool):
            raise DriverOptionError("rtscts", f"{rtscts!r} is not true or false", "use true or false")
        code_page = options.get("code_page", "cp437")
        try:
            codecs.lookup(code_page)
        except (LookupError, TypeError) as exc:
            raise DriverOptionError(
                "code_page", f"{code_page!r} is not a code page", 'use e.g. "cp437" or "cp1252"'
            ) from exc
        currency = options.get("currency", "")
        if not isinstance(currency, str) or (currency and not (len(currency) == 3 and currency.isalpha())):
            raise DriverOptionError("currency", f"{currency!r} is not an ISO 4217 code", 'use e.g. "EUR" or ""')
        idle = options.get("idle_flush_s", 2.0)
        if isinstance(idle, bool) or not isinstance(idle, int | float) or not 0 < idle <= 60:
            raise DriverOptionError("idle_flush_s", f"{idle!r} is not between 0 and 60 s", "use 2.0 (the default)")
        patterns = _patterns(options.get("patterns", {}), options.get("layout", "auto"))
        return cls(
            name, port.strip(), baudrate=baudrate, rtscts=rtscts, code_page=code_page, currency=currency.upper(),
            idle_flush_s=float(idle), patterns=patterns,
        )  # fmt: skip

    @classmethod
    def sample_config(cls) -> str:
        """The commented sample.toml text."""
        return resources.files("drivers.escpos").joinpath("sample.toml").read_text(encoding="utf-8")

    def doors(self) -> list[str]:
        """A receipt tap watches no door."""
        return []

    def health(self) -> dict[str, Any]:
        """connected, frames (receipts), bad_frames, reconnects, last_error, plus receipt outcome counters."""
        snapshot = self._health.snapshot()
        with self._health.lock:
            parser: EscPosParser | None = self._parser
            snapshot.update({k: self.outcomes[k] for k in ("sales", "refunds", "voids", "total_mismatch", "no_items",
                                                           "unread", "flushed_at_stop")})  # fmt: skip
            # Flagged baskets stay local and out of every release; the owner sees how many, and why.
            snapshot["flagged"] = {r: n for r, n in sorted(self.flagged.items()) if n}
        if parser is not None:
            snapshot.update(drawer_kicks=parser.drawer_kicks, images_skipped=parser.images, barcodes=parser.barcodes)
        return snapshot

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
