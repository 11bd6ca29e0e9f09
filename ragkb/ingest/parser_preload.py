"""Imported once by the parse workers' fork server, so every worker starts with unstructured
and its partitioners already loaded (importing them costs several seconds per process; a
forked worker shares them). Never imported by the main process."""

from ragkb import offline

offline.enforce()

import unstructured.partition.docx  # noqa: E402,F401
import unstructured.partition.email  # noqa: E402,F401
import unstructured.partition.html  # noqa: E402,F401
import unstructured.partition.md  # noqa: E402,F401
import unstructured.partition.pdf  # noqa: E402,F401
import unstructured.partition.pptx  # noqa: E402,F401
import unstructured.partition.text  # noqa: E402,F401

import ragkb.ingest.workers  # noqa: E402,F401
