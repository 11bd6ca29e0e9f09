"""Evaluation and benchmarks: retrieval quality on BEIR, answer quality on QA sets, ingest and
latency benchmarks. The runtime modules never import this package; `ragkb eval` loads it lazily."""
