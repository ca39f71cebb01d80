"""The kernel worker's pipe protocol: one pickled object per frame, behind an 8-byte length.

Both ends are this package (the resident agent and the worker it started from the same install),
so pickle carries numpy arrays without a schema of its own. No numba here: the resident side
imports this module.
"""

from __future__ import annotations

import pickle
import select
import struct
import time
from typing import IO, Any

HEADER = struct.Struct("<Q")
# A frame is a window's arrays or a thermal frame; anything near this is a bug, not data.
MAX_FRAME_BYTES = 1 << 30


class PipeClosed(EOFError):
    """The other end closed the pipe (it exited or was killed)."""


class PipeTimeout(TimeoutError):
    """The other end did not answer within the deadline."""


def write_frame(stream: IO[bytes], obj: Any) -> None:
    """Send one object and flush it."""
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(HEADER.pack(len(data)) + data)
    stream.flush()


def read_frame(stream: IO[bytes], timeout_s: float | None = None) -> Any:
    """Receive one object; PipeClosed at end of file, PipeTimeout past `timeout_s`."""
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    (size,) = HEADER.unpack(_read_exact(stream, HEADER.size, deadline))
    if size > MAX_FRAME_BYTES:
        raise PipeClosed(f"frame of {size} bytes announced; the pipe is out of step")
    return pickle.loads(_read_exact(stream, size, deadline))


def _read_exact(stream: IO[bytes], n: int, deadline: float | None) -> bytes:
    chunks, got = [], 0
    fd = stream.fileno()
    while got < n:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise PipeTimeout(f"no answer within the deadline ({got} of {n} bytes read)")
        # An unbuffered raw read returns what is there; a buffered read(n) could block past the deadline.
        chunk = stream.read1(n - got) if hasattr(stream, "read1") else stream.read(n - got)
        if not chunk:
            raise PipeClosed("the other end closed the pipe")
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)
