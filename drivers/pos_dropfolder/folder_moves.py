"""Moving a finished or refused export out of the drop folder, with its reason written next to it."""

from __future__ import annotations

import os
from pathlib import Path


def move_to(path: Path, target: Path, reason: str) -> Path:
    """Move the entry itself (a symlink stays a link, never its target) into target; return where it went."""
    destination = target / path.name
    counter = 1
    while os.path.lexists(destination):
        destination = target / f"{path.stem}.{counter}{path.suffix}"
        counter += 1
    if reason:
        # Written whole under a temporary name, then renamed: a reader never sees a half-written reason.
        reason_path = destination.with_name(destination.name + ".reason.txt")
        partial = reason_path.with_name("." + reason_path.name + ".part")
        partial.write_text(reason + "\n", encoding="utf-8")
        os.replace(partial, reason_path)
    os.replace(path, destination)
    return destination
