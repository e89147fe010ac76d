"""An exclusive lock on a results folder: one writer at a time.

`flock` on `<folder>/.lock`. The kernel drops the lock when its holder exits, however it
exits (kill -9 included), so a crashed run never leaves a stale lock behind; the file's
contents (pid and start time) only serve the refusal message.
"""

from __future__ import annotations

import fcntl
import os
from datetime import datetime, timezone
from pathlib import Path
from types import TracebackType

from step7bench.errors import UserError

LOCK_NAME = ".lock"


class FolderLock:
    """`with FolderLock(folder):` holds the folder or raises UserError at once if another
    process holds it."""

    def __init__(self, folder: Path | str) -> None:
        self.path = Path(folder) / LOCK_NAME
        self._fd: int | None = None

    def __enter__(self) -> FolderLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 200).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise UserError(f"results folder {self.path.parent} is in use by another run ({holder}); "
                            "wait for it to finish or choose another --results folder") from None
        os.ftruncate(fd, 0)
        started = datetime.now(timezone.utc).isoformat(timespec="seconds")
        os.pwrite(fd, f"pid {os.getpid()} since {started}".encode(), 0)
        self._fd = fd
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
