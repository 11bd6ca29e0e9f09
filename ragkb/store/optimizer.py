"""Building the embedded store's indexes in a child process while the store keeps answering.

Why: `EdgeShard.optimize()` (HNSW + sparse indexes, segment merges: queries 4-10x faster)
holds the GIL for its whole run, 35-48 s at 20k points and ~15 min at 100k on 2 loaded cores,
so in a thread of the service it stalls every query, health check and UI request. Instead
`EdgeStore.optimize_in_background` works on a copy:

1. it flushes the shard and copies its directory to `<shard>.optimizing` (`cp --reflink=auto`:
   a clone where the filesystem can, and the engine's sparse preallocated files stay sparse,
   which `shutil.copytree` would fill: 30 MB allocated became 172 MB at 8k points);
2. a child, `main()` here, loads the copy with its persisted config, optimizes it, checks that
   it holds as many points as before, closes it (the engine flushes) and exits. It runs at
   nice +10, so the service's queries get the CPU first, and dies with its parent
   (PR_SET_PDEATHSIG: a Python watchdog thread could not run, the engine holds the GIL), so no
   orphan burns CPU;
3. the parent swaps the copy in (`swap`) under the store's exclusive gate: queries wait for
   closing the old shard, two renames and loading the new one, not for the optimize.

A write between the copy and the swap would be lost with the old shard, so the store counts
its writes and discards the copy when the count moved (stopping the child at once).

Crash safety: the live shard is never modified, only renamed. Whatever step a crash
interrupts, `recover` (run before every open) finds one of these and keeps every point:
* `<shard>` and `<shard>.optimizing`: the copy was not swapped in; it is removed;
* `<shard>.old` and `<shard>.optimizing`, no `<shard>`: crashed between the two renames (or in
  the middle of a rollback); the old shard goes back, the copy is removed;
* `<shard>` and `<shard>.old`: the copy had been renamed in; it is kept if it loads, else the old
  shard goes back. The copy is only renamed in after its child exited cleanly and no write
  arrived, so it holds what the old one held.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeVar

log = logging.getLogger(__name__)

Outcome = Literal["swapped", "unchanged", "skipped", "discarded", "stopped", "failed"]
T = TypeVar("T")

CHILD_NICENESS = 10
_EXIT_UNCHANGED = 3  # the child's exit status when the engine found nothing to optimize
_POLL_S = 0.2  # how soon a write, a close or a stop request ends a running child
_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class Optimized:
    """What a background optimize did. `swapped`: the store now serves the optimized shard;
    otherwise it still serves the one it had: `unchanged` (nothing to optimize), `skipped` (not
    started), `discarded` (a write arrived during it), `stopped` (closed, or asked to stop),
    `failed` (`detail` says why)."""

    outcome: Outcome
    detail: str
    seconds: float = 0.0


def aside(path: Path) -> Path:
    """Where the copy is optimized, beside the shard (same filesystem: the swap is a rename)."""
    return path.with_name(path.name + ".optimizing")


def retired(path: Path) -> Path:
    """Where the live shard waits, closed, while its optimized copy is renamed in."""
    return path.with_name(path.name + ".old")


class ReadWriteLock:
    """Many holders of `shared()` (queries, writes) or one of `exclusive()` (the swap, close).
    A waiting exclusive holder keeps new shared ones out, so a steady stream of queries cannot
    starve the swap. Not reentrant: a holder must not take it again."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._shared = 0
        self._exclusive = False
        self._waiting = 0

    @contextmanager
    def shared(self) -> Iterator[None]:
        with self._cond:
            while self._exclusive or self._waiting:
                self._cond.wait()
            self._shared += 1
        try:
            yield
        finally:
            with self._cond:
                self._shared -= 1
                if not self._shared:
                    self._cond.notify_all()

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        with self._cond:
            self._waiting += 1
            try:
                while self._exclusive or self._shared:
                    self._cond.wait()
            finally:
                self._waiting -= 1
            self._exclusive = True
        try:
            yield
        finally:
            with self._cond:
                self._exclusive = False
                self._cond.notify_all()


class Job:
    """One copy and the child that optimizes it. `cancel()` may come from any thread (the store
    closing): it kills the child, or keeps it from starting."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.copy = aside(path)
        self._lock = threading.Lock()
        self._child: subprocess.Popen[bytes] | None = None
        self._cancelled = False

    def make_copy(self) -> str | None:
        """Copy the (flushed) shard aside; why not, when the disk cannot hold the copy and the
        segments the optimize writes beside it."""
        shutil.rmtree(self.copy, ignore_errors=True)
        used = sum(f.stat().st_blocks * 512 for f in self.path.rglob("*") if f.is_file())
        free = shutil.disk_usage(self.path.parent).free
        if free < 2 * used:
            return f"{free / 2**20:.0f} MB free, the copy and its new segments need about {2 * used / 2**20:.0f} MB"
        done = subprocess.run(["cp", "-a", "--reflink=auto", str(self.path), str(self.copy)], capture_output=True, text=True)
        if done.returncode:
            shutil.rmtree(self.copy, ignore_errors=True)
            raise OSError(f"copying {self.path} failed: {done.stderr.strip()}")
        return None

    def run(self, stop: Callable[[], Optimized | None]) -> Optimized | None:
        """Optimize the copy in a child; None when it is ready to swap in. `stop` is polled while
        the child runs: what it returns ends the child and becomes the outcome."""
        closed = Optimized("stopped", "the store was closed")
        with tempfile.TemporaryFile() as errors:  # a file, not a pipe: a chatty child never blocks
            with self._lock:
                if self._cancelled:
                    return closed
                # Started from the waiting thread: PR_SET_PDEATHSIG follows the thread that forks.
                # This file as a script (-P: its folder stays off sys.path): the child imports the
                # engine and the standard library only, not ragkb and qdrant-client (seconds).
                child = self._child = subprocess.Popen(
                    [sys.executable, "-P", __file__, str(self.copy), str(os.getpid())],
                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=errors,
                )  # fmt: skip
            try:
                while True:
                    try:
                        status = child.wait(_POLL_S)
                        break
                    except subprocess.TimeoutExpired:
                        verdict = closed if self._cancelled else stop()
                        if verdict is not None:
                            return verdict
                closing = self._cancelled
            finally:
                self.cancel()
            if closing:
                return closed
            if status == 0:
                return None
            if status == _EXIT_UNCHANGED:
                return Optimized("unchanged", "the engine found nothing to optimize")
            errors.seek(0)
            last = errors.read().decode(errors="replace").strip().splitlines()[-1:]
            return Optimized("failed", f"the optimizer process exited with {status}: {last[0] if last else 'no message'}")

    def cancel(self) -> None:
        """Kill the child (if it runs) and wait for it, so nothing writes in the copy after."""
        with self._lock:
            self._cancelled = True
            child = self._child
        if child is not None and child.poll() is None:
            child.kill()
            child.wait()

    def discard(self) -> None:
        shutil.rmtree(self.copy, ignore_errors=True)


def swap(path: Path, load: Callable[[Path], T]) -> tuple[T, str | None]:
    """Rename the optimized copy in place of the closed shard at `path` and load it: the new
    shard and None, or, when it does not load (`load` raises), the old shard reloaded and why.
    Each step leaves directories that `recover` handles (module docstring). The old shard is
    left at `retired(path)`: the caller deletes it once queries flow again."""
    copy, old = aside(path), retired(path)
    path.rename(old)
    copy.rename(path)
    _fsync_dir(path.parent)  # the renames are durable before the old shard is deleted
    try:
        shard = _loaded(load, path)
    except Exception as exc:
        path.rename(copy)
        old.rename(path)
        shutil.rmtree(copy)
        return load(path), str(exc)
    return shard, None


def recover(path: Path, load: Callable[[Path], T]) -> T:
    """Finish or undo what a crash interrupted (module docstring), then load the shard."""
    copy, old = aside(path), retired(path)
    if old.exists():
        if path.exists():
            try:
                shard = _loaded(load, path)
            except Exception as exc:
                log.warning("the optimized copy of %s does not load (%s): going back to the shard before it", path, exc)
                shutil.rmtree(copy, ignore_errors=True)
                path.rename(copy)
                old.rename(path)
            else:
                log.warning("finished swapping in the optimized copy of %s, interrupted by a crash", path)
                shutil.rmtree(old, ignore_errors=True)
                shutil.rmtree(copy, ignore_errors=True)
                return shard
        else:
            log.warning("restored %s from %s: a crash interrupted the swap", path, old)
            old.rename(path)
    if copy.exists():
        log.info("removing %s, left by an optimize that did not finish", copy)
        shutil.rmtree(copy)
    return load(path)


def _loaded(load: Callable[[Path], T], path: Path) -> T:
    """`load`, where finding no shard is a failure too: the old one must not be dropped for it."""
    shard = load(path)
    if shard is None:
        raise OSError(f"{path} holds no shard")
    return shard


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# --- the child -----------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    """`<copy> <parent pid>`: optimize the shard at `copy`; 0 optimized, 3 nothing to do."""
    copy, parent = (argv if argv is not None else sys.argv[1:])[:2]
    if not _die_with_parent(int(parent)):
        return 1
    os.nice(CHILD_NICENESS)
    import qdrant_edge as qe

    shard = qe.EdgeShard.load(copy)
    try:
        before = shard.count(qe.CountRequest(exact=True))
        changed = shard.optimize()
        after = shard.count(qe.CountRequest(exact=True))
    finally:
        shard.close()
    if after != before:
        print(f"the optimized copy holds {after} points, the shard {before}", file=sys.stderr)
        return 2
    return 0 if changed else _EXIT_UNCHANGED


def _die_with_parent(parent: int) -> bool:
    """Have the kernel kill this process when its parent dies; False if it died already."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    return os.getppid() == parent


if __name__ == "__main__":
    sys.exit(main())
