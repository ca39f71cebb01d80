"""Export file bytes -> text: byte order marks, UTF-8, and a single-byte fallback only when configured (pure).

Spreadsheet programs write "CSV UTF-8" with a byte order mark (EF BB BF) and "Unicode text" as UTF-16 with
one (FF FE / FE FF); older POS software writes Windows-1252. A BOM decides; otherwise the file must be UTF-8,
or, when `encoding` names another codec (e.g. "cp1252"), that codec. Decoding a cp1252 file as UTF-8 fails
on its first accented byte, so such a file is refused with the setting to set instead of read with
replacement characters.
"""

from __future__ import annotations

import codecs

BOMS = ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))
UTF8_NAMES = ("utf-8", "utf8", "utf-8-sig", "auto")


class DecodeError(ValueError):
    """The bytes are not text in any encoding the configuration allows; the message names the setting."""


def decode_export(data: bytes, encoding: str = "utf-8") -> tuple[str, str]:
    """(text, the encoding used); DecodeError with the position and the setting to change."""
    for bom, codec in BOMS:
        if data.startswith(bom):
            try:
                return data.decode(codec), codec
            except UnicodeDecodeError as exc:
                raise DecodeError(f"byte {exc.start}: not {codec} although the file starts with its mark") from exc
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError as exc:
        if encoding != "auto" and codecs.lookup(encoding).name.replace("_", "-") not in UTF8_NAMES:
            try:
                return data.decode(encoding), encoding
            except UnicodeDecodeError as fallback:
                raise DecodeError(f"byte {fallback.start}: neither UTF-8 nor {encoding}; check encoding") from fallback
        line = data.count(b"\n", 0, exc.start) + 1
        byte = data[exc.start]
        raise DecodeError(f'line {line}: byte 0x{byte:02x} is not UTF-8; if the POS writes Windows-1252 '
                          f'(Excel "CSV" on Windows), set encoding = "cp1252"') from exc  # fmt: skip
