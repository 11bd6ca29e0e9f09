"""ragkb: a private retrieval-augmented knowledge base that never leaves the premises.

Importing the package switches every dependency to offline, no-telemetry mode before any of
them is imported, so no code path can phone home or fetch weights from a hub.
"""

from ragkb import offline as _offline

_offline.enforce()

__version__ = "0.1.0"
