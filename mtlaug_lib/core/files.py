"""Atomic file writes: a reader, or a crash, never sees a half-written file.

For whatever is overwritten in place and read again later: checkpoints, re-executed notebooks.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any


def current_umask() -> int:
    """The process's umask (read by setting it and putting it back: there is no getter)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(
    path: str | os.PathLike[str],
    write: Callable[[IO[Any]], object],
    *,
    text: bool = False,
    keep_mode: bool = False,
) -> Path:
    """Write ``path`` through ``write(file)``, atomically; returns ``path`` as a ``Path``.

    ``write`` gets a file open for writing (binary, or UTF-8 text if ``text``) on a temporary
    file in ``path``'s folder; once it returns, the file is flushed and synced to disk and
    renamed over ``path`` with ``os.replace``. If anything fails, ``KeyboardInterrupt``
    included, the temporary file is removed and an existing ``path`` is left as it was.

    The file gets the permission bits a plain ``open()`` would give a new file (``0o666``
    less the umask; ``mkstemp`` alone would make it owner-only), or, with ``keep_mode``, those
    of the file it replaces, where there is one. The folder must exist.
    """
    path = Path(path)
    mode = path.stat().st_mode & 0o777 if keep_mode and path.exists() else None
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") if text else os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode if mode is not None else 0o666 & ~current_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
