"""ESC/POS command tables and the printed-receipt types (pure data; the tokenizer is in protocol.py).

Source of every byte: /work/shared/reference/protocols.md section 4.1 (receipt-print-hq/escpos-tools
`Printout.php` and `FeedAndCutCmd.php`, python-escpos `constants.py`, escpos-printer-db `default.yml`).
"""

from __future__ import annotations

import dataclasses

ESC, GS, FS, DLE = 0x1B, 0x1D, 0x1C, 0x10
LF, CR, HT, FF, CAN, NUL = 0x0A, 0x0D, 0x09, 0x0C, 0x18, 0x00

# ESC t n -> Python codec (escpos-printer-db default profile numbering).
CODE_PAGES: dict[int, str] = {
    0: "cp437", 2: "cp850", 3: "cp860", 4: "cp863", 5: "cp865", 16: "cp1252", 17: "cp866", 18: "cp852",
    19: "cp858", 40: "iso8859_15", 45: "cp1250", 46: "cp1251", 47: "cp1253", 48: "cp1254", 49: "cp1255",
    50: "cp1256", 51: "cp1257", 52: "cp1258",
}  # fmt: skip

# Fixed argument counts after the command byte (0 means the command is just two bytes).
ESC_ARGS: dict[int, int] = {
    0x21: 1, 0x45: 1, 0x2D: 1, 0x47: 1, 0x4D: 1, 0x61: 1, 0x64: 1, 0x4A: 1, 0x65: 1, 0x32: 0, 0x33: 1,
    0x24: 2, 0x74: 1, 0x52: 1, 0x70: 3, 0x3D: 1, 0x63: 2, 0x40: 0, 0x56: 1, 0x7B: 1, 0x20: 1, 0x72: 1,
    0x55: 1, 0x5C: 2, 0x25: 1, 0x53: 0, 0x4C: 0, 0x54: 1, 0x57: 8, 0x69: 0, 0x6D: 0, 0x42: 2, 0x26: 0,
}  # fmt: skip
GS_ARGS: dict[int, int] = {
    0x21: 1, 0x42: 1, 0x48: 1, 0x66: 1, 0x68: 1, 0x77: 1, 0x4C: 2, 0x57: 2, 0x61: 1, 0x62: 1, 0x49: 1,
    0x72: 1, 0x50: 2, 0x2F: 1, 0x24: 2, 0x5C: 2, 0x54: 1, 0x3A: 0,
}  # fmt: skip
FS_ARGS: dict[int, int] = {0x70: 2, 0x26: 0, 0x2E: 0, 0x43: 1, 0x21: 1, 0x2D: 1, 0x53: 2, 0x57: 1}
ESC_LINE_BREAKS = (0x64, 0x4A)  # ESC d n / ESC J n print the line and feed
ESC_CUTS = (0x69, 0x6D)  # legacy partial cuts
MAX_NUL_DATA = 255  # GS k barcode data / ESC D tab stops longer than this are not a command
MAX_LINE_CHARS = 512
MAX_RECEIPT_LINES = 2000


@dataclasses.dataclass(frozen=True, slots=True)
class PrintedLine:
    """One line of text as it came off the printer, with the emphasis the POS asked for."""

    text: str
    bold: bool = False
    large: bool = False  # double height or width
    align: int = 0  # 0 left, 1 centre, 2 right


@dataclasses.dataclass(frozen=True, slots=True)
class PrintedReceipt:
    """Everything printed between two receipt boundaries."""

    lines: tuple[PrintedLine, ...]
    drawer_kicks: int = 0
    barcodes: tuple[str, ...] = ()
    qr_codes: tuple[str, ...] = ()
    images: int = 0
    cut: bool = False

    @property
    def text(self) -> str:
        """The receipt's text, one line per printed line."""
        return "\n".join(line.text for line in self.lines)
