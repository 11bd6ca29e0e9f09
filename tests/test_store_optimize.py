"""The embedded store builds its indexes in a child process and swaps them in
(`EdgeStore.optimize_in_background`, ragkb.store.optimizer): queries keep being answered meanwhile,
answers do not change, a write during it is never lost, a crash at any step of the swap keeps
every point, and neither closing the store nor killing its process leaves a child or a copy.

The shard is real (Qdrant Edge, schema payloads with ACLs, sparse vectors); its vectors are small
and its indexing threshold low, so a few thousand points get an HNSW index in seconds. The
processes are observed through /proc: the optimizer child is "optimizing" once it has mapped the
copy's segment files (it loaded the copy and is in the engine's optimize).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import qdrant_edge as qe

from ragkb.config import Settings
from ragkb.store import schema
from ragkb.store.edge import EdgeStore, shard_path
from ragkb.store.optimizer import Optimized, aside, retired
from ragkb.store.qdrant import NewPoint

COLLECTION = "kb"
DIM = 64
POINTS = 4000
GROUPS = ("eng", "hr", "finance", "legal")
VOCAB = 600


def _points(start: int, count: int) -> list[NewPoint]:
    rng = np.random.default_rng(start)
    dense = rng.standard_normal((count, DIM)).astype(np.float32)
    points = []
    for n in range(start, start + count):
        doc = f"doc{n // 8}"
        group = GROUPS[(n // 8) % len(GROUPS)]
        shared = schema.doc_payload([schema.Location(f"/srv/{group}/{doc}.txt", [group])], "txt")
        terms = sorted(rng.choice(VOCAB, size=6, replace=False).tolist())
        payload = schema.chunk_payload(doc, n % 8, f"chunk {n} of {doc}", None, None, "text", shared)
        points.append(NewPoint(schema.point_id(doc, n % 8), dense[n - start].tolist(), (terms, rng.random(6).tolist()), payload))
    return points


def _questions(settings: Settings) -> list[tuple[list[float], tuple[list[int], list[float]], object]]:
    rng = np.random.default_rng(99)
    return [
        (rng.standard_normal(DIM).tolist(), (sorted(rng.choice(VOCAB, size=3, replace=False).tolist()), [1.0] * 3),
         schema.build_filter([GROUPS[n % len(GROUPS)]], None, settings))
        for n in range(12)
    ]  # fmt: skip


def _ask(store: EdgeStore, question: tuple) -> list[tuple[str, float]]:
    dense, sparse, acl = question
    return [(hit.id, round(hit.score, 4)) for hit in store.search(dense, sparse, 10, acl, "hybrid")]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A home holding one unindexed shard (built once; each test works on its own copy). Its
    low indexing threshold (KB of vectors per segment) and small HNSW graph are persisted in the
    shard's config, which the optimizer child loads as it is."""
    home = tmp_path_factory.mktemp("built")
    path = shard_path(Settings(home=home), COLLECTION)
    path.parent.mkdir(parents=True)
    qe.EdgeShard.create(str(path), qe.EdgeConfig(
        vectors={schema.DENSE: qe.EdgeVectorParams(size=DIM, distance=qe.Distance.Cosine)},
        sparse_vectors={schema.SPARSE: qe.EdgeSparseVectorParams(modifier=qe.Modifier.Idf)},
        hnsw_config=qe.HnswIndexConfig(m=8, ef_construct=32, full_scan_threshold=10_000),
        optimizers=qe.EdgeOptimizersConfig(indexing_threshold=100),
    )).close()  # fmt: skip
    store = EdgeStore(Settings(home=home), COLLECTION)
    store.ensure_collection(DIM)  # the payload indexes
    store.upsert(_points(0, POINTS))
    store.close()
    return home


@pytest.fixture(scope="module")
def optimized(built: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same shard, indexed by the engine's own in-process optimize."""
    path = tmp_path_factory.mktemp("optimized") / COLLECTION
    shutil.copytree(shard_path(Settings(home=built), COLLECTION), path)
    shard = qe.EdgeShard.load(str(path))
    assert shard.optimize()
    shard.close()
    return path


@pytest.fixture
def settings(built: Path, tmp_path: Path) -> Settings:
    home = tmp_path / "home"
    shutil.copytree(built, home)
    return Settings(home=home, collection=COLLECTION, optimize_min_points=1)


@pytest.fixture
def store(settings: Settings) -> Iterator[EdgeStore]:
    store = EdgeStore(settings, COLLECTION)
    yield store
    store.close()


def _leftovers(settings: Settings) -> list[str]:
    return sorted(p.name for p in (settings.home / "edge").iterdir() if p.name != COLLECTION)


def _state(pid: int) -> str | None:
    """The process's state letter, None once it is gone (a zombie counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None
    return None if state in ("Z", "X") else state


def _optimizing_child(parent: int, copy: Path, wait_s: float = 120.0) -> int:
    """The optimizer child of `parent` once it has the copy loaded (its segment files mapped)."""
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                if ppid == parent and b"ragkb/store/optimizer.py" in (entry / "cmdline").read_bytes():
                    if str(copy) + "/" in (entry / "maps").read_text():
                        return int(entry.name)
            except (OSError, IndexError, ValueError):
                continue
        time.sleep(0.02)
    raise AssertionError(f"no optimizer child of {parent} loaded {copy} within {wait_s} s")


def _in_background(store: EdgeStore) -> tuple[threading.Thread, list[Optimized]]:
    result: list[Optimized] = []
    thread = threading.Thread(target=lambda: result.append(store.optimize_in_background()))
    thread.start()
    return thread, result


def test_queries_are_answered_during_the_optimize_and_unchanged_after_the_swap(settings: Settings, store: EdgeStore) -> None:
    """(a) The old in-thread optimize answered no query while it ran (it holds the GIL); here
    queries complete while the child is inside the engine's optimize. (b) After the swap the
    store serves an indexed shard with the same answers (filtered hybrid queries on a shard this
    size are exact, with or without HNSW, so they must match to the last id)."""
    questions = _questions(settings)
    before = [_ask(store, q) for q in questions]
    assert all(before) and store.unindexed_points() == POINTS

    thread, result = _in_background(store)
    child = _optimizing_child(os.getpid(), aside(store.path))
    answered = answered_while_optimizing = 0
    while thread.is_alive():  # through the swap too: never an empty or half-swapped shard
        assert _ask(store, questions[answered % len(questions)]) == before[answered % len(questions)]
        answered += 1
        answered_while_optimizing += _state(child) is not None
        time.sleep(0.005)  # a service's pace, not a busy loop starving the child at nice +10
    thread.join()

    assert result[0].outcome == "swapped", result[0]
    assert answered_while_optimizing > 0
    assert store.unindexed_points() == 0  # dense and sparse vectors of every point indexed
    assert [_ask(store, q) for q in questions] == before
    assert store.count() == POINTS
    assert _leftovers(settings) == []
    assert store.optimize_in_background().outcome == "skipped"  # nothing left unindexed


@pytest.mark.parametrize("write", ["new point", "payload rewrite"])
def test_a_write_during_the_optimize_discards_the_copy_and_is_kept(settings: Settings, store: EdgeStore, write: str) -> None:
    """(c) The copy was taken before the write: swapping it in would lose the write. A payload
    rewrite leaves the point count alone: only the store's write counter can tell."""
    extra = _points(POINTS, 1)[0]
    doc = _points(0, 1)[0].payload[schema.DOC_ID]
    thread, result = _in_background(store)
    child = _optimizing_child(os.getpid(), aside(store.path))
    if write == "new point":
        store.upsert([extra])
    else:
        store.set_doc_payload(doc, {schema.ACL: ["legal"]})
    thread.join()

    assert result[0].outcome == "discarded", result[0]
    assert _state(child) is None  # stopped at once, not left to finish
    assert store.unindexed_points() > 0  # still the shard that was never swapped
    assert _leftovers(settings) == []
    store.close()
    reopened = EdgeStore(settings, COLLECTION)  # the shard the child ran beside flushes and reopens
    try:
        if write == "new point":
            assert reopened.count() == POINTS + 1
            assert [hit.id for hit in reopened.scroll(schema.doc_filter(extra.payload[schema.DOC_ID]))] == [extra.id]
        else:
            assert reopened.count() == POINTS
            assert {tuple(hit.payload[schema.ACL]) for hit in reopened.scroll(schema.doc_filter(doc))} == {("legal",)}
    finally:
        reopened.close()


def test_closing_the_store_kills_the_child_and_removes_the_copy(settings: Settings, store: EdgeStore) -> None:
    """(e) No orphan keeps burning CPU on a copy nobody will use, no copy is left on disk."""
    thread, result = _in_background(store)
    child = _optimizing_child(os.getpid(), aside(store.path))
    store.close()
    assert _state(child) is None
    assert _leftovers(settings) == []
    thread.join()
    assert result[0].outcome == "stopped", result[0]
    reopened = EdgeStore(settings, COLLECTION)
    try:
        assert reopened.count() == POINTS and reopened.unindexed_points() == POINTS
    finally:
        reopened.close()


def test_the_child_dies_with_its_parent_and_the_next_open_removes_its_copy(settings: Settings) -> None:
    """(e) A service killed with -9 mid-optimize: the kernel kills the child (PR_SET_PDEATHSIG;
    the child's own Python cannot watch, the engine holds its GIL); the next open cleans up.
    The child is stopped (SIGSTOP) first, so it cannot end by finishing its work: only a
    signal from the kernel ends it."""
    script = textwrap.dedent(f"""
        from pathlib import Path
        from ragkb.config import Settings
        from ragkb.store.edge import EdgeStore
        EdgeStore(Settings(home=Path({str(settings.home)!r}), optimize_min_points=1), {COLLECTION!r}).optimize_in_background()
    """)
    parent = subprocess.Popen([sys.executable, "-c", script])
    try:
        child = _optimizing_child(parent.pid, aside(shard_path(settings, COLLECTION)))
        os.kill(child, signal.SIGSTOP)
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait()
    deadline = time.monotonic() + 60
    while _state(child) is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    if _state(child) is not None:
        os.kill(child, signal.SIGKILL)
        pytest.fail("the optimizer child outlived its parent")
    assert _leftovers(settings) == [f"{COLLECTION}.optimizing"]

    store = EdgeStore(settings, COLLECTION)
    try:
        assert _leftovers(settings) == []
        assert store.count() == POINTS
    finally:
        store.close()


@pytest.mark.parametrize("step", ["copied", "old renamed away", "copy renamed in", "copy renamed in, unloadable"])
def test_a_crash_at_any_step_of_the_swap_keeps_every_point(settings: Settings, optimized: Path, step: str) -> None:
    """(d) The directories each step of `optimizer.swap` leaves, as a kill -9 would leave them;
    the next open must serve a whole shard (the optimized one once it was renamed in, if it
    loads) and leave nothing beside it."""
    path = shard_path(settings, COLLECTION)
    ids = {hit.id for hit in _open_scroll(settings)}
    if step == "copied":
        shutil.copytree(optimized, aside(path))
    elif step == "old renamed away":
        path.rename(retired(path))
        shutil.copytree(optimized, aside(path))
    else:
        path.rename(retired(path))
        shutil.copytree(optimized, path)
        if step.endswith("unloadable"):
            (path / "edge_config.json").write_text("{not json")

    store = EdgeStore(settings, COLLECTION)
    try:
        assert _leftovers(settings) == []
        assert {hit.id for hit in store.scroll(fields=False)} == ids
        assert store.unindexed_points() == (0 if step == "copy renamed in" else POINTS)
        store.upsert(_points(POINTS, 1))  # and it is a working shard
        assert store.count() == POINTS + 1
    finally:
        store.close()


def _open_scroll(settings: Settings) -> list:
    store = EdgeStore(settings, COLLECTION)
    try:
        return list(store.scroll(fields=False))
    finally:
        store.close()


def test_the_service_indexes_the_base_once_its_queue_is_idle(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """The ingest queue's maintenance: a base ingested before the service started (by the CLI)
    is indexed once the queue is idle, and questions are answered meanwhile."""
    from ragkb.runtime import Runtime
    from ragkb.service import jobs
    from ragkb.service.state import ServiceState

    monkeypatch.setattr(jobs, "MAINTENANCE_IDLE_S", 0.1)
    runtime = Runtime(settings)
    state = ServiceState(settings.home / "service.sqlite")
    queue = jobs.IngestQueue(runtime, state)
    question = _questions(settings)[0]
    before = _ask(runtime.store, question)
    queue.start()
    try:
        child = _optimizing_child(os.getpid(), aside(shard_path(settings, COLLECTION)))
        assert _ask(runtime.store, question) == before
        while _state(child) is not None or _leftovers(settings):
            time.sleep(0.05)
        assert runtime.store.unindexed_points() == 0  # type: ignore[attr-defined]
        assert _ask(runtime.store, question) == before
    finally:
        queue.stop()
        runtime.close()
        state.close()

