"""Admin page: knowledge base status, failed and skipped files, uploads, re-ingest of the
configured sources, and forgetting a document: all of it through the service's API (uploads and
ingests run in its queue, a deletion answers with a receipt).

Paths and failure reasons come from documents: tables of them are `st.dataframe` (plain-text
cells); anything put into Markdown (alerts, captions, `st.table` cells) goes through `md()`.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import streamlit as st

from ragkb import acl
from ragkb.errors import RagkbError
from ragkb.filetypes import SUPPORTED_SUFFIXES
from ui import jobs, kbui
from ui.markup import fmt_ago, fmt_time, md

log = logging.getLogger("ragkb.ui")
UPLOAD_SUFFIXES = sorted(s.lstrip(".") for s in SUPPORTED_SUFFIXES)

ctx = kbui.context()
settings, identity, client = ctx.settings, ctx.identity, ctx.client
if not identity.is_admin:  # app.py does not even register this page for them; belt and braces
    st.error("The admin page is for members of the group 'admin'.")
    st.stop()

st.title("Knowledge base admin")
panel = st.container()  # the ingest job this session follows, then the outcome of the last action
try:
    status = client.status()
    rows = [d for d in client.documents() if d["status"] == "ok"]
except RagkbError as exc:
    kbui.stop_on(exc, "Cannot read the knowledge base")
problems: list[str] = []


def _status_tab(status: dict[str, Any]) -> None:
    last = status.get("last_run") or {}
    cols = st.columns(4)
    cols[0].metric("Documents", status["documents"])
    cols[1].metric("Chunks", status["chunks"])
    cols[2].metric("Failed files", status["failed_documents"])
    when = (last.get("finished_at") or last.get("started_at")) if last else None
    cols[3].metric("Last ingest", fmt_ago(when) if last else "never", help=fmt_time(when) if last else None)
    summary = last.get("summary") if last else None
    if isinstance(summary, dict):
        st.caption(f"Last run {fmt_time(when)}: " + md(jobs.summary_line(summary)))
    elif last and not last.get("finished_at"):
        st.caption("The last run has not finished (running now, or it was killed: the next run completes it).")
    if status["chunks"] != status["chunks_in_manifest"]:
        st.warning(
            f"The store holds {status['chunks']} chunks but the manifest expects {status['chunks_in_manifest']}: "
            "an ingest is running or was interrupted; the next run repairs it."
        )
    st.subheader("Failed files")
    if status.get("failed"):  # plain-text cells
        st.dataframe(
            [{"file": f.get("path"), "reason": f.get("error")} for f in status["failed"]],
            hide_index=True,
            width="stretch",
            key="failed_files",
        )
    else:
        st.caption("None.")
    if status.get("skipped"):
        st.subheader("Skipped by the last run")
        st.dataframe(
            [{"file": s.get("path"), "reason": s.get("reason")} for s in status["skipped"] if isinstance(s, dict)],
            hide_index=True,
            width="stretch",
            key="skipped_files",
        )
    st.subheader("Configuration")
    llm, service = status.get("llm") or {}, status.get("service") or {}
    config = {
        "home": status.get("home"),
        "configuration file": status.get("config_file"),
        "collection": status.get("collection"),
        "qdrant": status.get("qdrant"),
        "embedding model": status.get("embedding_model"),
        "reranker": status.get("reranker"),
        "answer model": f"{llm.get('backend')}: {llm.get('reason')}",
        "service": f"{ctx.service.url}, started {fmt_ago(time.time() - float(service.get('uptime_s') or 0))}, "
        f"{service.get('ingest_jobs_queued', 0)} ingest job(s) queued",
    }
    # st.table renders its cells as Markdown.
    st.table({"setting": list(config), "value": [md(value) for value in config.values()]})


def _upload_tab() -> None:
    st.caption(
        md(f"Files are saved by the service under {status.get('home') or 'RAGKB_HOME'}/uploads and ingested by its queue. ")
        + md(f"Types: {', '.join(UPLOAD_SUFFIXES)}; at most {settings.max_file_mb:g} MB each.")
    )
    with st.form("upload", clear_on_submit=True):
        files = st.file_uploader("Documents", type=UPLOAD_SUFFIXES, accept_multiple_files=True, key="upload_files")
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
            return
        limit = settings.max_file_mb * 1024 * 1024
        chosen = [(f.name, f.getvalue()) for f in files]
        problems.extend(f"{name}: {len(data) / 1048576:.1f} MB exceeds {settings.max_file_mb:g} MB" for name, data in chosen if len(data) > limit)
        chosen = [(name, data) for name, data in chosen if len(data) <= limit]
        if chosen:
            try:
                accepted = client.upload(chosen, acl.parse_groups(groups_text))
            except RagkbError as exc:
                problems.append(f"The upload was refused: {exc}")
            else:
                jobs.start(accepted["job_id"], f"Upload of {len(chosen)} file(s)")
    st.divider()
    st.caption("Scan the configured sources ([[sources]] in ragkb.toml) again: new and changed files are ingested, removed ones forgotten.")
    if st.button("Re-ingest the configured sources", icon=":material/sync:", key="reingest"):
        try:
            jobs.start(client.ingest([]), "Re-ingest of the configured sources")
        except RagkbError as exc:
            problems.append(f"Could not start the re-ingest: {exc}")


def _forget(target: str) -> tuple[str, str]:
    """A folder: every file under it. A file: its document, with the service's deletion receipt,
    unless the same content sits at another path too (then only this path goes)."""
    if target.endswith("/"):
        return "ok", f"Forgot {client.forget(target.rstrip('/'))} file(s) under {target}."
    row = next(r for r in rows if r["path"] == target)
    twins = [r["path"] for r in rows if r["doc_id"] == row["doc_id"] and r["path"] != target]
    if twins:
        client.forget(target)
        return "ok", f"Forgot 1 file: {target}. The same content stays indexed as {', '.join(twins)}."
    receipt = client.delete(row["doc_id"])
    message = (
        f"Forgot {len(receipt['paths'])} file(s): {target}. {receipt['points_removed']} passage(s) removed from the "
        f"index, {receipt['points_remaining']} remaining."
    )
    return ("ok" if receipt["points_remaining"] == 0 else "error"), message


def _forget_tab() -> None:
    st.caption(
        "Removes a file (or every file under a folder) and its passages from the knowledge base. "
        "An uploaded file's copy is deleted too; a file still present in a folder the nightly "
        "ingest scans comes back on its next run."
    )
    # A selectbox shows options as plain text.
    choices = [r["path"] for r in rows] + [f"{f}/" for f in kbui.folders([r["path"] for r in rows])]
    with st.form("forget"):
        target = st.selectbox("File or folder", choices, index=None, key="forget_path", placeholder="Choose an ingested file")
        submitted = st.form_submit_button("Forget", icon=":material/delete:")
    if submitted and target:
        try:
            kind, message = _forget(target)
        except RagkbError as exc:
            log.warning("forget from the UI failed: %s", exc)
            kind, message = "error", f"Could not forget {target}: {exc}"
        jobs.done(kind, message)


status_tab, upload_tab, forget_tab = st.tabs(["Status", "Add documents", "Forget a document"])
with status_tab:
    _status_tab(status)
with upload_tab:
    _upload_tab()
with forget_tab:
    _forget_tab()
with panel:
    jobs.show_result(problems)
jobs.follow(client, panel)
