"""One-time migration of a collection from qdrant-client's path mode (`RAGKB_HOME/qdrant`, the
embedded store before Qdrant Edge) into a Qdrant Edge shard. Apart from `ragkb.store.edge` because
it runs once per base and needs qdrant-client's local mode, which the adapter does not.
"""

from __future__ import annotations

import logging
import shutil
import time
import warnings

from qdrant_client import models

from ragkb.config import Settings
from ragkb.errors import StoreError
from ragkb.store.edge import EdgeStore, shard_exists, shard_path
from ragkb.store.qdrant import NewPoint
from ragkb.store.schema import DENSE, SPARSE

log = logging.getLogger(__name__)


def migrate_local_collection(settings: Settings, collection: str, page: int = 2048) -> int | None:
    """Copy a collection of the old qdrant-client local folder (`RAGKB_HOME/qdrant`) into a new
    shard; the number of points copied, or None when there is nothing to migrate (no such
    collection there, or its shard exists already).

    The caller holds ragkb's store lock. The shard is built beside its final place and renamed
    when complete, so a crash mid-copy leaves no half shard that would later look migrated (the
    next call starts over). The old folder is renamed `qdrant.migrated-<timestamp>` once every
    collection in it has a shard: renaming it earlier would hide collections not yet migrated
    (each is migrated when first opened). Vectors are copied as stored: no re-embedding. Pages
    are large because local mode sorts every id for each scroll page (quadratic in pages).
    """
    from qdrant_client import QdrantClient

    source = settings.qdrant_path
    target = shard_path(settings, collection)
    if shard_exists(target) or not (source / "collection" / collection).is_dir():
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # local mode warns above 20k points: it is being retired
        client = QdrantClient(path=str(source))
    try:
        vectors = client.get_collection(collection).config.params.vectors
        if not isinstance(vectors, dict) or DENSE not in vectors:
            raise StoreError(f"collection '{collection}' in {source} has no '{DENSE}' vector: not a ragkb collection")
        building = target.with_name(target.name + ".migrating")
        if building.exists():
            shutil.rmtree(building)  # left by a migration that was killed
        store = EdgeStore(settings, collection, building)
        copied = 0
        try:
            store.ensure_collection(vectors[DENSE].size)
            offset = None
            while True:
                points, offset = client.scroll(collection, limit=page, offset=offset, with_payload=True, with_vectors=True)
                store.upsert([_new_point(point) for point in points])
                copied += len(points)
                if offset is None:
                    break
        finally:
            store.close()
        building.rename(target)
        remaining = [c.name for c in client.get_collections().collections if not shard_exists(shard_path(settings, c.name))]
    finally:
        client.close()
    log.info("migrated %d points of '%s' from %s to %s", copied, collection, source, target)
    if not remaining:
        retired = source.with_name(f"{source.name}.migrated-{time.strftime('%Y%m%dT%H%M%S')}")
        source.rename(retired)
        log.info("moved the old embedded store to %s", retired)
    return copied


def _new_point(point: models.Record) -> NewPoint:
    vector = point.vector if isinstance(point.vector, dict) else {}
    sparse = vector.get(SPARSE)
    return NewPoint(
        id=str(point.id),
        dense=list(vector[DENSE]),  # type: ignore[arg-type]
        sparse=(list(sparse.indices), list(sparse.values)) if isinstance(sparse, models.SparseVector) else ([], []),
        payload=point.payload or {},
    )
