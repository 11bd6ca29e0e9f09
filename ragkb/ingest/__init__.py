"""Ingestion: scan the sources -> plan against the manifest -> parse in workers -> write
(the crash-safety protocol). Entry point: `Ingestor(runtime).run(paths)`."""

from ragkb.ingest.ingestor import FINAL_OUTCOMES, PIPELINE_VERSION, Ingestor, IngestReport, ProgressCallback, ingest_lock
from ragkb.ingest.scan import FileFailure, Skipped

__all__ = [
    "FINAL_OUTCOMES",
    "PIPELINE_VERSION",
    "FileFailure",
    "IngestReport",
    "Ingestor",
    "ProgressCallback",
    "Skipped",
    "ingest_lock",
]
