"""One router per resource: answers (ask, search, OpenAI-compatible chat, feedback), documents
and ingest jobs, and the system endpoints (health, readiness, status, metrics)."""
