"""Where step7bench keeps files it can rebuild, and how it writes them.

The bottom layer: imports nothing else of the package, so every layer may use it.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

CACHE_ENV = "STEP7BENCH_CACHE"


def cache_root() -> Path:
    """The cache folder: ``$STEP7BENCH_CACHE`` when set and non-empty, else
    ``~/.cache/step7bench``; never inside the repository. Each user of it takes a subfolder."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "step7bench").expanduser()


def atomic_write(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """Create `path`'s folder, then call `write` on a temporary file beside `path` and rename
    it into place, so a concurrent reader sees the old file or the whole new one, never half
    of it. If `write` raises, the temporary file is removed and `path` is left as it was."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp", delete=False)
    try:
        with handle:
            write(handle)
        os.replace(handle.name, path)
    except BaseException:
        Path(handle.name).unlink(missing_ok=True)
        raise
