"""Imported once by the parse workers' fork server, so every worker starts with unstructured,
its partitioners and ragkb's own readers already loaded (importing them costs several seconds
per process; a forked worker shares them). Never imported by the main process."""

from ragkb import offline

offline.enforce()

import unstructured.partition.docx  # noqa: E402,F401
import unstructured.partition.email  # noqa: E402,F401
import unstructured.partition.html  # noqa: E402,F401
import unstructured.partition.md  # noqa: E402,F401
import unstructured.partition.msg  # noqa: E402,F401
import unstructured.partition.pdf  # noqa: E402,F401
import unstructured.partition.pptx  # noqa: E402,F401
import unstructured.partition.text  # noqa: E402,F401

import ragkb.ingest.workers  # noqa: E402,F401
import ragkb.legacy  # noqa: E402,F401
import ragkb.markup  # noqa: E402,F401
import ragkb.ocr  # noqa: E402,F401
import ragkb.opendoc  # noqa: E402,F401
import ragkb.pdfpages  # noqa: E402,F401
import ragkb.spreadsheets  # noqa: E402,F401
