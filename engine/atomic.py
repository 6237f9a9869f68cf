"""Files written whole or not at all: a temporary file beside the target, renamed into place.

A crash, a full disk or Ctrl-C mid-write leaves the previous file as it was (os.replace is atomic
on one file system), never a truncated one.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


def _umask() -> int:
    # Read once, at import (setting it back at once): os.umask is the only way to read it.
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _umask()


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary path beside `path` to write to; renamed onto `path` when the block ends without error."""
    path = Path(path)
    # The temporary name starts with the target's, cut so that it stays within a name's 255 bytes.
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name[:200]}.", suffix=".tmp", dir=path.parent)
    # mkstemp makes the file private (0600); the file it becomes keeps the target's mode, or gets
    # the mode any new file would (0666 less the umask).
    try:
        mode = path.stat().st_mode & 0o7777
    except OSError:
        mode = 0o666 & ~_UMASK
    os.fchmod(fd, mode)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
