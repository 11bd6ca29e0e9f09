"""Admin page: ingest status, upload documents to ingest, forget a document.

Paths and failure reasons come from documents: tables of them are `st.dataframe` (plain-text
cells); anything put into Markdown (alerts, captions, `st.table` cells) goes through `md()`.
"""

from __future__ import annotations

import logging
from pathlib import Path

import streamlit as st

from ragkb import acl
from ragkb.errors import Busy, RagkbError
from ragkb.ingest import Ingestor, IngestReport
from ragkb.status import collect_status
from ui import kbui, uploads
from ui.markup import fmt_ago, fmt_time, md

log = logging.getLogger("ragkb.ui")

settings, identity = kbui.context()
if not identity.is_admin:  # app.py does not even register this page for them; belt and braces
    st.error("The admin page is for members of the group 'admin'.")
    st.stop()

st.title("Knowledge base admin")
runtime = kbui.runtime(settings)
try:
    _ = runtime.store
except RagkbError as exc:  # e.g. the embedded store held by a running `ragkb ingest`
    st.error(f"Cannot open the knowledge base: {md(exc)}")
    st.stop()
rows = runtime.manifest.sources()


def _report_lines(report: IngestReport) -> str:
    return (
        f"added {report.added} · updated {report.updated} · unchanged {report.unchanged} · "
        f"deleted {report.deleted} · skipped {len(report.skipped)} · failed {len(report.failed)} · "
        f"{report.chunks} chunks embedded in {report.seconds:.1f} s"
    )


def _show_report(report: IngestReport) -> None:
    (st.warning if report.failed else st.success)("Ingest finished: " + _report_lines(report))
    problems = [{"file": f.path, "reason": f.error} for f in report.failed]
    problems += [{"file": s.path, "reason": f"skipped: {s.reason}"} for s in report.skipped]
    if problems:  # a dataframe shows its cells as plain text: no escaping
        st.dataframe(problems, hide_index=True, width="stretch")


_OUTCOMES = ("added", "updated", "unchanged", "deleted", "skipped", "failed")


def _count(value: object) -> int:
    """A run summary counts most outcomes and lists some (failed, skipped)."""
    return len(value) if isinstance(value, list) else value if isinstance(value, int) else 0


status_tab, upload_tab, forget_tab = st.tabs(["Status", "Add documents", "Forget a document"])

with status_tab:
    try:
        status = collect_status(runtime)
    except Exception as exc:  # noqa: BLE001 - show what is wrong instead of a blank page
        log.exception("status failed")
        st.error(f"Could not read the knowledge base status: {md(exc)}")
        status = None
    if status is not None:
        last = status["last_run"] or {}
        cols = st.columns(4)
        cols[0].metric("Documents", status["documents"])
        cols[1].metric("Chunks", status["chunks"])
        cols[2].metric("Failed files", status["failed_documents"])
        when = (last.get("finished_at") or last.get("started_at")) if last else None
        cols[3].metric("Last ingest", fmt_ago(when) if last else "never", help=fmt_time(when) if last else None)
        summary = last.get("summary") if last else None
        if isinstance(summary, dict):
            st.caption(
                f"Last run {fmt_time(when)}: "
                + " · ".join(f"{key} {_count(summary.get(key))}" for key in _OUTCOMES)
                + f" · {md(summary.get('seconds', 0))} s"
            )
        elif last and not last.get("finished_at"):
            st.caption("The last run has not finished (running now, or it was killed: the next run completes it).")
        if status["chunks"] != status["chunks_in_manifest"]:
            st.warning(
                f"The store holds {status['chunks']} chunks but the manifest expects {status['chunks_in_manifest']}: "
                "an ingest is running or was interrupted; the next run repairs it."
            )
        st.subheader("Failed files")
        if status["failed"]:  # plain-text cells
            st.dataframe(
                [{"file": f["path"], "reason": f["error"]} for f in status["failed"]],
                hide_index=True,
                width="stretch",
                key="failed_files",
            )
        else:
            st.caption("None.")
        if status["skipped"]:
            st.subheader("Skipped by the last run")
            st.dataframe(
                [{"file": s.get("path"), "reason": s.get("reason")} for s in status["skipped"] if isinstance(s, dict)],
                hide_index=True,
                width="stretch",
                key="skipped_files",
            )
        st.subheader("Configuration")
        backend = kbui.backend_info(settings)
        config = {
            "home": status["home"],
            "configuration file": status["config_file"],
            "collection": status["collection"],
            "qdrant": status["qdrant"],
            "embedding model": status["embedding_model"],
            "reranker": status["reranker"],
            "answer model": f"{backend['backend']}: {backend['reason']}",
        }
        # st.table renders its cells as Markdown.
        st.table({"setting": list(config), "value": [md(value) for value in config.values()]})

with upload_tab:
    st.caption(
        md(f"Files are saved under {uploads.upload_dir(settings)} and ingested at once. ")
        + md(f"Types: {', '.join(uploads.UPLOAD_SUFFIXES)}; at most {settings.max_file_mb:g} MB each.")
    )
    with st.form("upload", clear_on_submit=True):
        files = st.file_uploader("Documents", type=uploads.UPLOAD_SUFFIXES, accept_multiple_files=True, key="upload_files")
        groups_text = st.text_input(
            "Readable by groups",
            key="upload_groups",
            placeholder="e.g. hr, finance (empty: everyone)",
            help=md(f"Written as an ACL sidecar next to each file; empty means RAGKB_ACL_DEFAULT ({settings.acl_default})."),
        )
        submitted = st.form_submit_button("Upload and ingest", type="primary", icon=":material/upload:")
    if submitted:
        if not files:
            st.warning("Choose at least one file first.")
        else:
            groups = acl.parse_groups(groups_text)
            saved: list[Path] = []
            problems: list[str] = []
            for upload in files:
                try:
                    saved.append(uploads.save_upload(settings, upload.name, upload.getvalue(), groups))
                except (ValueError, OSError) as exc:
                    problems.append(f"{upload.name}: {exc}")
            report: IngestReport | None = None
            if saved:
                try:
                    with st.spinner(f"Ingesting {len(saved)} file(s)…"):
                        report = Ingestor(runtime).run(saved)
                except Busy as exc:
                    problems.append(f"{exc}; try again when it has finished")
                except Exception as exc:  # noqa: BLE001
                    log.exception("ingest from the UI failed")
                    problems.append(f"ingest failed: {exc}")
            st.session_state.pop("admin_forget_result", None)
            st.session_state["admin_upload_result"] = (report, problems)
            st.rerun()  # the status tab above must show the new counts
    if "admin_upload_result" in st.session_state:
        report, problems = st.session_state["admin_upload_result"]
        for problem in problems:
            st.error(md(problem))
        if report is not None:
            _show_report(report)

with forget_tab:
    st.caption(
        "Removes a file (or every file under a folder) and its chunks from the knowledge base. "
        "Uploaded copies are deleted too; a file still present in a folder the nightly ingest "
        "scans comes back on its next run."
    )
    folder_choices = [f"{f}/" for f in kbui.folders(rows)]  # a selectbox shows options as plain text
    choices = [r.path for r in rows] + folder_choices
    with st.form("forget"):
        target = st.selectbox("File or folder", choices, index=None, key="forget_path", placeholder="Choose an ingested file")
        forget = st.form_submit_button("Forget", icon=":material/delete:")
    if forget and target:
        try:
            count = Ingestor(runtime).forget(Path(target.rstrip("/")))
            paths = [r.path for r in rows if (r.path.startswith(target) if target.endswith("/") else r.path == target)]
            deleted = sum(uploads.remove_upload(settings, p) for p in paths)
            message = f"Forgot {count} file(s) under {target}." + (f" Deleted {deleted} uploaded copy(ies)." if deleted else "")
            st.session_state["admin_forget_result"] = ("ok", message)
        except Busy as exc:
            st.session_state["admin_forget_result"] = ("error", f"{exc}; try again when it has finished")
        except Exception as exc:  # noqa: BLE001
            log.exception("forget from the UI failed")
            st.session_state["admin_forget_result"] = ("error", f"forget failed: {exc}")
        st.session_state.pop("admin_upload_result", None)
        st.rerun()
    if "admin_forget_result" in st.session_state:
        kind, message = st.session_state["admin_forget_result"]
        (st.success if kind == "ok" else st.error)(md(message))
