"""qdrant-client's filter models -> Qdrant Edge's filter classes, for the embedded store.

`ragkb.store.schema` builds every filter (ACLs, facets, one document) as qdrant-client models,
which the server backend sends as they are; `ragkb.store.edge` translates them here, once per
call. Apart from the adapter because it is pure: no shard, no engine state.
"""

from __future__ import annotations

from typing import Any

import qdrant_edge as qe
from qdrant_client import models


def to_edge_filter(query_filter: models.Filter | None) -> qe.Filter | None:
    """qdrant-client's filter models -> the engine's classes, for what `schema` builds.

    Covers must/should/must_not over FieldCondition (MatchValue, MatchAny, MatchExcept),
    HasIdCondition, NestedCondition and nested Filters. Anything else raises ValueError: a silently dropped
    condition could be an ACL that no longer binds.
    """
    if query_filter is None:
        return None
    if not isinstance(query_filter, models.Filter):
        raise ValueError(f"not a qdrant_client Filter: {type(query_filter).__name__}")
    if query_filter.min_should is not None:
        raise ValueError("min_should is not supported by the embedded store adapter")
    return qe.Filter(
        must=_conditions(query_filter.must),
        should=_conditions(query_filter.should),
        must_not=_conditions(query_filter.must_not),
    )


def _conditions(conditions: Any) -> list[Any] | None:
    if conditions is None:
        return None
    if not isinstance(conditions, list):  # qdrant-client accepts one condition as well as a list
        conditions = [conditions]
    return [_condition(c) for c in conditions]


def _condition(condition: Any) -> Any:
    if isinstance(condition, models.Filter):
        return to_edge_filter(condition)
    if isinstance(condition, models.NestedCondition):
        return qe.NestedCondition(condition.nested.key, to_edge_filter(condition.nested.filter))  # type: ignore[arg-type]
    if isinstance(condition, models.HasIdCondition):
        return qe.HasIdCondition(set(condition.has_id))
    if isinstance(condition, models.FieldCondition):
        others = {"range", "geo_bounding_box", "geo_radius", "geo_polygon", "values_count", "is_empty", "is_null"}
        used = sorted(name for name in others if getattr(condition, name, None) is not None)
        if used or condition.match is None:
            raise ValueError(f"field condition on '{condition.key}' uses {used or 'no match'}: not supported by the adapter")
        return qe.FieldCondition(condition.key, match=_match(condition.key, condition.match))
    raise ValueError(f"filter condition {type(condition).__name__} is not supported by the embedded store adapter")


def _match(key: str, match: Any) -> Any:
    if isinstance(match, models.MatchValue):
        return qe.MatchValue(match.value)
    if isinstance(match, models.MatchAny):
        return qe.MatchAny(list(match.any))
    if isinstance(match, models.MatchExcept):
        return qe.MatchExcept(list(match.except_))
    raise ValueError(f"match {type(match).__name__} on '{key}' is not supported by the embedded store adapter")
