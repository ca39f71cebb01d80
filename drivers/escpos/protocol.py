"""ESC/POS printer stream -> printed receipts (text lines, drawer kicks, barcodes): a pure streaming tokenizer.

Source of every byte: /work/shared/reference/protocols.md section 4.1 (the command table and its sources:
receipt-print-hq/escpos-tools `Printout.php` and `FeedAndCutCmd.php`, python-escpos `constants.py`,
escpos-printer-db `default.yml` for the ESC t code-page numbers). Commands outside that table that
POS software commonly sends (ESC * bit images, ESC D tab stops, GS 8 L, FS p NV images) are skipped
by their documented lengths so their payload is never read as text.

Receipt boundaries: `ESC @` (initialise) starts a receipt, `GS V` (and the legacy `ESC i` / `ESC m`)
cuts it. A cut receipt is held until the next text, the next `ESC @` or `flush()` (the driver calls it
after an idle gap), because POS software often kicks the cash drawer just *after* the cut.
No I/O, no clock; `feed` never raises, and buffers stay bounded on endless garbage.
"""

from __future__ import annotations

import codecs
import dataclasses
from collections import Counter

from drivers.escpos.commands import (
    CAN,
    CODE_PAGES,
    CR,
    DLE,
    ESC,
    ESC_ARGS,
    ESC_CUTS,
    ESC_LINE_BREAKS,
    FF,
    FS,
    FS_ARGS,
    GS,
    GS_ARGS,
    HT,
    LF,
    MAX_LINE_CHARS,
    MAX_NUL_DATA,
    MAX_RECEIPT_LINES,
    PrintedLine,
    PrintedReceipt,
)

__all__ = ["CODE_PAGES", "EscPosParser", "PrintedLine", "PrintedReceipt"]


class EscPosParser:
    """Streaming ESC/POS tokenizer: `feed(bytes)` returns the receipts completed so far."""

    def __init__(self, default_code_page: str = "cp437", tab_width: int = 8) -> None:
        codecs.lookup(default_code_page)  # an unknown codec is a configuration error, caught in from_options
        self.default_code_page = default_code_page
        self.tab_width = tab_width
        self.receipts = 0
        self.bad_frames = 0
        self.bad_reasons: Counter[str] = Counter()
        self.drawer_kicks = 0
        self.images = 0
        self.barcodes = 0
        self.cuts = 0
        self.reset()

    def reset(self) -> None:
        """Forget partial input (after a reconnect); counters are kept."""
        self._buf = bytearray()
        self._skip = 0  # payload bytes of an image or graphics command still to drop
        self._codec = self.default_code_page
        self._bold = self._large = False
        self._align = 0
        self._chars: list[str] = []
        self._line_bold = self._line_large = False
        self._lines: list[PrintedLine] = []
        self._kicks = 0
        self._barcodes: list[str] = []
        self._qr: list[str] = []
        self._images = 0
        self._held: PrintedReceipt | None = None  # cut, waiting for a trailing drawer kick
        self._out: list[PrintedReceipt] = []

    # -- public --------------------------------------------------------------------------------------
    def feed(self, data: bytes) -> list[PrintedReceipt]:
        """Consume bytes; return receipts that are complete."""
        if self._skip:
            dropped = min(self._skip, len(data))
            self._skip -= dropped
            data = data[dropped:]
        self._buf += data
        pos = 0
        while pos < len(self._buf):
            used = self._step(pos)
            if used == 0:
                break  # an incomplete command: wait for more bytes
            pos += used
            if self._skip:
                dropped = min(self._skip, len(self._buf) - pos)
                self._skip -= dropped
                pos += dropped
        del self._buf[:pos]
        out, self._out = self._out, []
        return out

    def flush(self) -> list[PrintedReceipt]:
        """End of input or an idle gap: close the open receipt and release a held one."""
        if self._buf and not self._skip:
            self._bad("truncated_command")
        self._buf.clear()
        self._end_line(force=False)
        self._close_receipt(cut=False)
        self._release_held()
        out, self._out = self._out, []
        return out

    # -- tokenizer -----------------------------------------------------------------------------------
    def _bad(self, reason: str) -> None:
        self.bad_frames += 1
        self.bad_reasons[reason] += 1

    def _step(self, pos: int) -> int:
        """Handle the token at pos; return bytes used, 0 if it is incomplete."""
        buf = self._buf
        byte = buf[pos]
        if byte >= 0x20:
            end = pos + 1
            while end < len(buf) and buf[end] >= 0x20 and end - pos < 256:
                end += 1
            self._text(bytes(buf[pos:end]))
            return end - pos
        if byte == LF:
            self._end_line(force=True)
        elif byte == FF:
            self._end_line(force=False)
        elif byte == HT:
            self._tab()
        elif byte in (CR, CAN):
            pass
        elif byte == ESC:
            return self._esc(pos)
        elif byte == GS:
            return self._gs(pos)
        elif byte == FS:
            return self._fs(pos)
        elif byte == DLE:
            return self._dle(pos)
        else:
            self._bad("control_byte")
        return 1

    def _need(self, pos: int, count: int) -> bool:
        return len(self._buf) - pos >= count

    def _esc(self, pos: int) -> int:
        if not self._need(pos, 2):
            return 0
        cmd = self._buf[pos + 1]
        if cmd == 0x2A:  # ESC * m nL nH d...: bit image, 8-dot (m 0, 1) or 24-dot (m 32, 33) columns
            if not self._need(pos, 5):
                return 0
            m, cols = self._buf[pos + 2], self._buf[pos + 3] + 256 * self._buf[pos + 4]
            self._images += 1
            self.images += 1
            self._skip = cols * (3 if m in (32, 33) else 1)
            return 5
        if cmd == 0x44:  # ESC D n1 ... NUL: horizontal tab positions
            return self._nul_terminated(pos, 2, None)
        args = ESC_ARGS.get(cmd)
        if args is None:
            self._bad("unknown_command")
            return 2
        if not self._need(pos, 2 + args):
            return 0
        arg = self._buf[pos + 2] if args else 0
        if cmd == 0x40:
            self._initialise()
        elif cmd == 0x21:
            self._bold, self._large = bool(arg & 0x08), bool(arg & 0x30)
        elif cmd in (0x45, 0x47):
            self._bold = bool(arg & 1)
        elif cmd == 0x61:
            self._align = {48: 0, 49: 1, 50: 2}.get(arg, arg if arg in (0, 1, 2) else 0)
        elif cmd in ESC_LINE_BREAKS:
            self._end_line(force=True)
        elif cmd == 0x74:
            codec = CODE_PAGES.get(arg)
            if codec is None:
                self._bad("unknown_code_page")
            else:
                self._codec = codec
        elif cmd == 0x70:
            self._kicks += 1
            self.drawer_kicks += 1
        elif cmd in ESC_CUTS:
            self._cut()
        return 2 + args

    def _gs(self, pos: int) -> int:
        if not self._need(pos, 2):
            return 0
        buf, cmd = self._buf, self._buf[pos + 1]
        if cmd == 0x56:  # GS V m [n]: cut; m 65/66 feed n first
            if not self._need(pos, 3):
                return 0
            size = 4 if buf[pos + 2] in (65, 66, 97, 98, 103, 104) else 3
            if not self._need(pos, size):
                return 0
            self._cut()
            return size
        if cmd == 0x6B:  # GS k m: barcode
            if not self._need(pos, 3):
                return 0
            m = buf[pos + 2]
            if m <= 6:
                return self._nul_terminated(pos, 3, self._barcodes)
            if not self._need(pos, 4):
                return 0
            size = 4 + buf[pos + 3]
            if not self._need(pos, size):
                return 0
            self._barcodes.append(bytes(buf[pos + 4 : pos + size]).decode("latin-1"))
            self.barcodes += 1
            return size
        if cmd == 0x28:  # GS ( fn pL pH payload: extended commands, skipped by length
            if not self._need(pos, 5):
                return 0
            fn, length = buf[pos + 2], buf[pos + 3] + 256 * buf[pos + 4]
            if fn == 0x6B:  # QR code: keep the stored data (cn 49, fn 80), skip the rest
                if not self._need(pos, 5 + length):
                    return 0
                block = bytes(buf[pos + 5 : pos + 5 + length])
                if len(block) >= 3 and block[0] == 49 and block[1] == 80:
                    self._qr.append(block[3:].decode("latin-1"))
                return 5 + length
            if fn == 0x4C:
                self._images += 1
                self.images += 1
            self._skip = length
            return 5
        if cmd == 0x38:  # GS 8 L p1 p2 p3 p4 payload: large graphics data, 32-bit length
            if not self._need(pos, 7):
                return 0
            self._skip = int.from_bytes(buf[pos + 3 : pos + 7], "little")
            self._images += 1
            self.images += 1
            return 7
        if cmd == 0x76:  # GS v 0 m xL xH yL yH d...: raster image, (xL+256xH) bytes per row, (yL+256yH) rows
            if not self._need(pos, 8):
                return 0
            if buf[pos + 2] != 0x30:
                self._bad("unknown_command")
                return 2
            width, height = buf[pos + 4] + 256 * buf[pos + 5], buf[pos + 6] + 256 * buf[pos + 7]
            self._images += 1
            self.images += 1
            self._skip = width * height
            return 8
        if cmd == 0x2A:  # GS * x y d...: define downloaded bit image, x*y*8 bytes
            if not self._need(pos, 4):
                return 0
            self._skip = buf[pos + 2] * buf[pos + 3] * 8
            return 4
        args = GS_ARGS.get(cmd)
        if args is None:
            self._bad("unknown_command")
            return 2
        if not self._need(pos, 2 + args):
            return 0
        if cmd == 0x21:
            self._large = bool(buf[pos + 2])
        return 2 + args

    def _fs(self, pos: int) -> int:
        if not self._need(pos, 2):
            return 0
        cmd = self._buf[pos + 1]
        args = FS_ARGS.get(cmd)
        if args is None:
            self._bad("unknown_command")
            return 2
        if not self._need(pos, 2 + args):
            return 0
        if cmd == 0x70:  # FS p n m: print a stored (NV) logo
            self._images += 1
            self.images += 1
        return 2 + args

    def _dle(self, pos: int) -> int:
        if not self._need(pos, 2):
            return 0
        cmd = self._buf[pos + 1]
        if cmd in (0x04, 0x05):  # DLE EOT n / DLE ENQ n: real-time status
            return 3 if self._need(pos, 3) else 0
        if cmd == 0x14:  # DLE DC4 fn ...: fn 1 is a real-time drawer pulse (fn m t), fn 8 clears (7 bytes)
            if not self._need(pos, 3):
                return 0
            fn = self._buf[pos + 2]
            size = 10 if fn == 8 else 5
            if not self._need(pos, size):
                return 0
            if fn == 1:
                self._kicks += 1
                self.drawer_kicks += 1
            return size
        self._bad("unknown_command")
        return 2

    def _nul_terminated(self, pos: int, header: int, into: list[str] | None) -> int:
        start = pos + header
        end = self._buf.find(b"\x00", start, start + MAX_NUL_DATA + 1)
        if end == -1:
            if len(self._buf) - start > MAX_NUL_DATA:
                self._bad("unterminated_data")
                return header
            return 0
        if into is not None:
            into.append(bytes(self._buf[start:end]).decode("latin-1"))
            self.barcodes += 1
        return end + 1 - pos

    # -- receipt assembly ----------------------------------------------------------------------------
    def _text(self, data: bytes) -> None:
        if self._held is not None:
            self._release_held()
        if not self._chars:
            self._line_bold, self._line_large = self._bold, self._large
        self._line_bold |= self._bold
        self._line_large |= self._large
        self._chars.append(data.decode(self._codec, errors="replace"))
        if sum(map(len, self._chars)) > MAX_LINE_CHARS:
            self._bad("oversized_line")
            self._end_line(force=True)

    def _tab(self) -> None:
        column = sum(map(len, self._chars))
        spaces = self.tab_width - column % self.tab_width
        self._chars.append(" " * (spaces if spaces >= 2 else spaces + self.tab_width))

    def _end_line(self, force: bool) -> None:
        if not self._chars and not force:
            return
        text = "".join(self._chars).rstrip()
        self._chars = []
        if text or self._lines:  # blank lines before the first text are paper feed, not content
            self._lines.append(PrintedLine(text, self._line_bold, self._line_large, self._align))
        if len(self._lines) >= MAX_RECEIPT_LINES:
            self._bad("oversized_receipt")
            self._close_receipt(cut=False)

    def _initialise(self) -> None:
        self._end_line(force=False)
        self._close_receipt(cut=False)
        self._release_held()
        self._codec, self._bold, self._large, self._align = self.default_code_page, False, False, 0

    def _cut(self) -> None:
        self.cuts += 1
        self._end_line(force=False)
        self._release_held()
        self._close_receipt(cut=True)

    def _close_receipt(self, cut: bool) -> None:
        lines = list(self._lines)
        while lines and not lines[-1].text:
            lines.pop()
        if any(line.text for line in lines):
            receipt = PrintedReceipt(
                tuple(lines), self._kicks, tuple(self._barcodes), tuple(self._qr), self._images, cut
            )
            if cut:
                self._held = receipt
            else:
                self._out.append(receipt)
                self.receipts += 1
            self._kicks = 0
        elif self._held is not None:
            # A drawer kick between the cut and the next receipt belongs to the receipt just cut.
            self._held = dataclasses.replace(self._held, drawer_kicks=self._held.drawer_kicks + self._kicks)
            self._kicks = 0
        self._lines, self._barcodes, self._qr, self._images = [], [], [], 0

    def _release_held(self) -> None:
        if self._held is None:
            return
        held = dataclasses.replace(self._held, drawer_kicks=self._held.drawer_kicks + self._kicks)
        self._kicks = 0
        self._held = None
        self._out.append(held)
        self.receipts += 1
