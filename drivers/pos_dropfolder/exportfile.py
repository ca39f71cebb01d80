"""One export file opened safely and read as text streams, as often as the passes need, from one descriptor.

The file is opened without following a symlink and without blocking (a FIFO named like an export must not
hang the driver), must be a regular file inside the folder, and is read from the same open descriptor in
every pass, so a file renamed over it meanwhile is noticed (`changed()`) rather than half mixed in.
"""

from __future__ import annotations

import codecs
import io
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

from drivers.pos_dropfolder.protocol import DropFileError
from drivers.pos_dropfolder.stream import bounded_lines, decoded_lines
from drivers.pos_dropfolder.text_decoding import BOMS, UTF8_NAMES

Identity = tuple[int, int, int, int]  # (st_dev, st_ino, st_size, st_mtime_ns)


def identity(st: os.stat_result) -> Identity:
    """What must not change while a file is read."""
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def refusal_before_open(path: Path, folder: Path) -> DropFileError | None:
    """Why the entry is not safe to open (a symlink, not a regular file, outside the folder), or None."""
    try:
        st = os.lstat(path)
    except OSError as exc:
        return DropFileError(f"cannot look at it ({exc.strerror})", "unreadable")
    if stat.S_ISLNK(st.st_mode):
        return DropFileError(f"a symbolic link (to {os.readlink(path)[:200]!r}); not followed", "symlink")
    if not stat.S_ISREG(st.st_mode):
        return DropFileError("not a regular file (a folder, FIFO, socket or device)", "not_regular")
    if Path(os.path.realpath(path)).parent != Path(os.path.realpath(folder)):
        return DropFileError("its real path leaves the folder", "outside_folder")
    return None


class ExportFile:
    """An open export: `lines()` re-reads it from the start; `changed()` says whether it moved or grew."""

    def __init__(self, path: Path, encoding: str, max_line_chars: int) -> None:
        self.path, self.max_line_chars = path, max_line_chars
        try:
            self.fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except PermissionError as exc:
            raise DropFileError(
                f"not readable by the agent ({exc.strerror}); fix its permissions", "unreadable"
            ) from exc
        except OSError as exc:  # ELOOP: it became a symlink after it was looked at
            raise DropFileError(f"cannot be opened safely ({exc.strerror})", "unreadable") from exc
        st = os.fstat(self.fd)
        if not stat.S_ISREG(st.st_mode):
            os.close(self.fd)
            raise DropFileError("not a regular file", "not_regular")
        self.opened = identity(st)
        head = os.pread(self.fd, 4, 0)
        bom = next((codec for mark, codec in BOMS if head.startswith(mark)), None)
        self.codec = bom or "utf-8"
        # Without a BOM the file must be UTF-8, or the configured single-byte codec when it is not.
        fallback = encoding != "auto" and codecs.lookup(encoding).name.replace("_", "-") not in UTF8_NAMES
        self.fallback = encoding if bom is None and fallback else None

    def __enter__(self) -> ExportFile:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        os.close(self.fd)

    def use_fallback(self) -> bool:
        """Switch to the configured codec after UTF-8 failed; False when there is none."""
        if self.fallback is None or self.codec == self.fallback:
            return False
        self.codec = self.fallback
        return True

    def lines(self) -> Iterator[str]:
        """The file's lines from the start (line ends kept), decoded, each bounded."""
        os.lseek(self.fd, 0, os.SEEK_SET)
        binary = io.BufferedReader(io.FileIO(self.fd, "rb", closefd=False), 1 << 16)
        if "a\n".encode(self.codec) != b"a\n":  # UTF-16: b"\n" is not a line end, so the text layer splits
            return bounded_lines(io.TextIOWrapper(binary, encoding=self.codec, newline="\n"), self.max_line_chars)
        return decoded_lines(binary, self.codec, self.max_line_chars)

    def changed(self) -> str:
        """Why the file is no longer the one opened (grew, rewritten, replaced, moved away), or ""."""
        if identity(os.fstat(self.fd)) != self.opened:
            return "it was written to while being read"
        try:
            now = os.stat(self.path, follow_symlinks=False)
        except FileNotFoundError:
            return "it was moved away while being read"
        if identity(now) != self.opened:
            return "another file replaced it while it was being read"
        return ""
