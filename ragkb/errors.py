"""One error hierarchy for everything a ragkb operation can refuse or fail at.

Each class knows the CLI exit code and the HTTP status it maps to, so the CLI and the service
translate errors in exactly one place each and agree with each other. Exit codes:

* 0 success; 1 partial (some files failed, an answer was flagged, a thing was not found);
* 2 usage or configuration error, or a component that cannot work as configured;
* 75 (EX_TEMPFAIL) the knowledge base is busy (another writer holds it): retry later.

Per-file problems during ingest are not exceptions of this hierarchy: they are reported as
values (`ragkb.parse.ParseError` becomes a failure row) so one bad file never stops a run.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_PARTIAL = 1
EXIT_USAGE = 2
EXIT_TEMPFAIL = 75


class RagkbError(Exception):
    """Base class; the message is shown to the user as it is, so it must say what to do."""

    exit_code: int = EXIT_USAGE
    http_status: int = 500
    kind: str = "error"


class ConfigError(RagkbError):
    """Settings, ragkb.toml, the users file or a sidecar that is configured but unusable."""

    http_status = 500
    kind = "configuration"


class BadInput(RagkbError):
    """A request or argument that cannot be served as given (too long, malformed, unknown)."""

    http_status = 422
    kind = "bad_input"


class TooLarge(BadInput):
    """A question or upload over its size limit."""

    http_status = 413
    kind = "too_large"


class NotFound(RagkbError):
    """A document, job or file the caller named does not exist (or is not theirs to see)."""

    exit_code = EXIT_PARTIAL
    http_status = 404
    kind = "not_found"


class AccessError(RagkbError):
    """Unknown user, bad credentials, or an action the caller's groups do not allow."""

    http_status = 403
    kind = "access"


class AuthenticationError(AccessError):
    """No or wrong credentials (as opposed to valid credentials without the right)."""

    http_status = 401
    kind = "authentication"


class Busy(RagkbError):
    """Another process holds the knowledge base (an ingest run, or the embedded store)."""

    exit_code = EXIT_TEMPFAIL
    http_status = 409
    kind = "busy"


class IngestLocked(Busy):
    """Another ingest run holds the write lock of this RAGKB_HOME."""


class StoreError(RagkbError):
    """The vector store cannot be opened or used; the message says what to fix."""

    http_status = 503
    kind = "store"


class StoreBusy(StoreError, Busy):
    """The embedded store is open in another process and did not come free in time."""

    exit_code = EXIT_TEMPFAIL
    http_status = 503
    kind = "store_busy"


class ModelUnavailable(RagkbError):
    """A model the configuration asks for is not on this machine."""

    http_status = 503
    kind = "model_unavailable"


class LLMError(RagkbError):
    """The generation backend failed or cannot be reached."""

    http_status = 503
    kind = "llm"
