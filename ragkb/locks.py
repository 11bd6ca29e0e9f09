"""Process locks on a RAGKB_HOME: flock, so a SIGKILLed holder never leaves a stale lock.

Two locks exist: `ingest.lock` (one writer run at a time) and `store.lock` (the embedded store's
folder is open in one process at a time). Either is taken before the thing it guards is
touched, and a holder's pid is written into it so the error can name who holds it.
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

from ragkb.errors import Busy, StoreBusy

_POLL_S = 0.2


class HomeLock:
    def __init__(self, path: Path, what: str, error: type[Busy] = StoreBusy) -> None:
        self.path = path
        self.what = what
        self._error = error
        self._handle: object | None = None

    def acquire(self, wait_s: float = 0.0) -> None:
        """Take the lock, waiting up to `wait_s` seconds; raise the Busy error naming the holder."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+")
        deadline = time.monotonic() + max(0.0, wait_s)
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    handle.seek(0)
                    holder = handle.read().strip() or "unknown"
                    handle.close()
                    waited = f" (waited {wait_s:g} s)" if wait_s else ""
                    raise self._error(
                        f"{self.what} of {self.path.parent} is in use by another process (pid {holder}){waited}; "
                        "try again when it finishes, or run `ragkb serve` so one process serves everyone"
                    ) from None
                time.sleep(_POLL_S)
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self._handle = handle

    def release(self) -> None:
        if self._handle is not None:
            self._handle.close()  # type: ignore[attr-defined]
            self._handle = None

    def __enter__(self) -> HomeLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
