"""Admin page: ingest status, upload documents to ingest, forget a document."""

from __future__ import annotations

import logging
from pathlib import Path

import streamlit as st

import kbui
from ragkb.ingest import IngestLocked, IngestReport
from ragkb.status import collect_status

log = logging.getLogger("ragkb.ui")

settings, identity = kbui.context()
if not identity.is_admin:  # app.py does not even register this page for them; belt and braces
    st.error("The admin page is for members of the group 'admin'.")
    st.stop()

st.title("Knowledge base admin")
try:
    store = kbui.shared_store(settings)
except Exception as exc:  # noqa: BLE001 - e.g. embedded Qdrant held by a running `ragkb ingest`
    st.error(f"Cannot open the knowledge base: {exc}")
    st.stop()
rows = kbui.manifest_rows(settings)


def _report_lines(report: IngestReport) -> str:
    return (
        f"added {report.added} · updated {report.updated} · unchanged {report.unchanged} · "
        f"deleted {report.deleted} · skipped {report.skipped} · failed {len(report.failed)} · "
        f"{report.chunks} chunks embedded in {report.seconds:.1f} s"
    )


def _show_report(report: IngestReport) -> None:
    (st.warning if report.failed else st.success)("Ingest finished: " + _report_lines(report))
    if report.failed:
        st.dataframe(
            [{"file": f.path, "reason": f.error} for f in report.failed], hide_index=True, use_container_width=True
        )


status_tab, upload_tab, forget_tab = st.tabs(["Status", "Add documents", "Forget a document"])

with status_tab:
    try:
        status = collect_status(settings, store=store)
    except Exception as exc:  # noqa: BLE001 - show what is wrong instead of a blank page
        log.exception("status failed")
        st.error(f"Could not read the knowledge base status: {exc}")
        status = None
    if status is not None:
        last = status["last_run"] or {}
        cols = st.columns(4)
        cols[0].metric("Documents", status["documents"])
        cols[1].metric("Chunks", status["chunks"])
        cols[2].metric("Failed files", status["failed_documents"])
        when = (last.get("finished_at") or last.get("started_at")) if last else None
        cols[3].metric("Last ingest", kbui.fmt_ago(when) if last else "never", help=kbui.fmt_time(when) if last else None)
        summary = last.get("summary") if last else None
        if isinstance(summary, dict):
            st.caption(
                f"Last run {kbui.fmt_time(when)}: "
                + " · ".join(f"{key} {summary.get(key, 0)}" for key in ("added", "updated", "unchanged", "deleted", "skipped"))
                + f" · failed {len(summary.get('failed') or [])} · {summary.get('seconds', 0)} s"
            )
        elif last and not last.get("finished_at"):
            st.caption("The last run has not finished (running now, or it was killed: the next run completes it).")
        if status["chunks"] != status["chunks_in_manifest"]:
            st.warning(
                f"The store holds {status['chunks']} chunks but the manifest expects {status['chunks_in_manifest']}: "
                "an ingest is running or was interrupted; the next run repairs it."
            )
        st.subheader("Failed files")
        if status["failed"]:
            st.dataframe(
                [{"file": f["path"], "reason": f["error"]} for f in status["failed"]],
                hide_index=True,
                use_container_width=True,
                key="failed_files",
            )
        else:
            st.caption("None.")
        st.subheader("Configuration")
        backend = kbui.backend_info(settings)
        st.table(
            {
                "setting": ["home", "collection", "qdrant", "embedding model", "reranker", "answer model"],
                "value": [
                    status["home"],
                    status["collection"],
                    status["qdrant"],
                    status["embedding_model"],
                    status["reranker"],
                    f"{backend['backend']}: {backend['reason']}",
                ],
            }
        )

with upload_tab:
    st.caption(
        f"Files are saved under {kbui.upload_dir(settings)} and ingested at once. "
        f"Types: {', '.join(kbui.UPLOAD_SUFFIXES)}; at most {settings.max_file_mb:g} MB each."
    )
    with st.form("upload", clear_on_submit=True):
        files = st.file_uploader("Documents", type=kbui.UPLOAD_SUFFIXES, accept_multiple_files=True, key="upload_files")
        groups_text = st.text_input(
            "Readable by groups",
            key="upload_groups",
            placeholder="e.g. hr, finance (empty: everyone)",
            help=f"Written as an ACL sidecar next to each file; empty means RAGKB_ACL_DEFAULT ({settings.acl_default}).",
        )
        submitted = st.form_submit_button("Upload and ingest", type="primary", icon=":material/upload:")
    if submitted:
        if not files:
            st.warning("Choose at least one file first.")
        else:
            groups = kbui.parse_groups(groups_text)
            saved: list[Path] = []
            problems: list[str] = []
            for upload in files:
                try:
                    saved.append(kbui.save_upload(settings, upload.name, upload.getvalue(), groups))
                except (ValueError, OSError) as exc:
                    problems.append(f"{upload.name}: {exc}")
            report: IngestReport | None = None
            if saved:
                ingestor = kbui.ingestor(settings)
                try:
                    with st.spinner(f"Ingesting {len(saved)} file(s)…"):
                        report = ingestor.run(saved)
                except IngestLocked as exc:
                    problems.append(f"{exc}; try again when it has finished")
                except Exception as exc:  # noqa: BLE001
                    log.exception("ingest from the UI failed")
                    problems.append(f"ingest failed: {exc}")
                finally:
                    ingestor.close()
            st.session_state.pop("admin_forget_result", None)
            st.session_state["admin_upload_result"] = (report, problems)
            st.rerun()  # the status tab above must show the new counts
    if "admin_upload_result" in st.session_state:
        report, problems = st.session_state["admin_upload_result"]
        for problem in problems:
            st.error(problem)
        if report is not None:
            _show_report(report)

with forget_tab:
    st.caption(
        "Removes a file (or every file under a folder) and its chunks from the knowledge base. "
        "Uploaded copies are deleted too; a file still present in a folder the nightly ingest "
        "scans comes back on its next run."
    )
    folder_choices = [f"{f}/" for f in kbui.folders(rows)]
    choices = [r.path for r in rows] + folder_choices
    with st.form("forget"):
        target = st.selectbox("File or folder", choices, index=None, key="forget_path", placeholder="Choose an ingested file")
        forget = st.form_submit_button("Forget", icon=":material/delete:")
    if forget and target:
        ingestor = kbui.ingestor(settings)
        try:
            count = ingestor.forget(Path(target.rstrip("/")))
            paths = [r.path for r in rows if (r.path.startswith(target) if target.endswith("/") else r.path == target)]
            deleted = sum(kbui.remove_upload(settings, p) for p in paths)
            message = f"Forgot {count} file(s) under {target}." + (f" Deleted {deleted} uploaded copy(ies)." if deleted else "")
            st.session_state["admin_forget_result"] = ("ok", message)
        except IngestLocked as exc:
            st.session_state["admin_forget_result"] = ("error", f"{exc}; try again when it has finished")
        except Exception as exc:  # noqa: BLE001
            log.exception("forget from the UI failed")
            st.session_state["admin_forget_result"] = ("error", f"forget failed: {exc}")
        finally:
            ingestor.close()
        st.session_state.pop("admin_upload_result", None)
        st.rerun()
    if "admin_forget_result" in st.session_state:
        kind, message = st.session_state["admin_forget_result"]
        (st.success if kind == "ok" else st.error)(message)
