"""Prometheus metrics: requests and their latency per route, ingest counters, queue length.
A registry of its own (not the process-global one), so two apps in one process never clash."""

from __future__ import annotations

import time
from typing import Any

from fastapi import FastAPI, Request
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from ragkb.ingest import IngestReport

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("ragkb_requests_total", "HTTP requests", ["method", "route", "status"], registry=self.registry)
        self.latency = Histogram("ragkb_request_seconds", "HTTP request latency (to the first byte)", ["route"], buckets=_BUCKETS, registry=self.registry)
        self.files = Counter("ragkb_ingest_files_total", "Files handled by ingest jobs", ["outcome"], registry=self.registry)
        self.chunks = Counter("ragkb_ingest_chunks_total", "Chunks embedded by ingest jobs", registry=self.registry)
        self.queued = Gauge("ragkb_ingest_jobs_queued", "Ingest jobs waiting", registry=self.registry)

    def install(self, app: FastAPI) -> None:
        @app.middleware("http")
        async def measure(request: Request, call_next: Any) -> Any:
            started = time.perf_counter()
            response = await call_next(request)
            route = request.scope.get("route")
            name = getattr(route, "path", "unmatched")
            self.latency.labels(name).observe(time.perf_counter() - started)
            self.requests.labels(request.method, name, str(response.status_code)).inc()
            return response

    def record_ingest(self, report: IngestReport) -> None:
        for outcome, count in (("added", report.added), ("updated", report.updated), ("deleted", report.deleted),
                               ("failed", len(report.failed)), ("skipped", len(report.skipped))):  # fmt: skip
            self.files.labels(outcome).inc(count)
        self.chunks.inc(report.chunks)

    def render(self, queued: int) -> bytes:
        self.queued.set(queued)
        return generate_latest(self.registry)
