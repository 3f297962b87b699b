"""Writing files so that readers see the old content or the new, never half, and a planted link is never
followed: the state directory may be writable by people the platform must not trust with other files."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable


def replace_atomically(target: Path, write: Callable[[BinaryIO], None]) -> None:
    """Write through a new temporary file beside the target, opened once and exclusively (a fixed `.partial` name
    could be a symlink planted to redirect the write), then rename it over the target."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".partial")
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
        os.replace(name, target)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
