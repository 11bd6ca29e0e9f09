"""Ingest jobs and results on the admin page.

Uploads and re-ingests run in the service's ingest queue (one writer at a time). The page keeps
the id of the job it started in the session and follows it (`GET /v1/ingest/{id}`) with a
progress bar until it ends, then shows the run summary; a rerun in between (another click, a
page switch) picks the same job up again. File names and failure reasons come from documents:
Markdown gets them through `md()`, tables as plain-text `st.dataframe` cells.
"""

from __future__ import annotations

import time
from typing import Any

import streamlit as st

from ragkb.client import ServiceClient
from ragkb.errors import RagkbError
from ui.markup import md

JOB = "admin_job"  # the job being followed: {"job_id", "what"}
RESULT = "admin_result"  # what the last action did: {"kind": job|ok|error, ...}
POLL_S = 0.5
OUTCOMES = ("added", "updated", "unchanged", "deleted", "skipped", "failed")


def count(value: object) -> int:
    """A run summary counts most outcomes and lists some (failed, skipped)."""
    return len(value) if isinstance(value, list) else value if isinstance(value, int) else 0


def summary_line(summary: dict[str, Any]) -> str:
    return (
        " · ".join(f"{key} {count(summary.get(key))}" for key in OUTCOMES)
        + f" · {count(summary.get('chunks'))} chunks embedded in {float(summary.get('seconds') or 0):.1f} s"
    )


def start(job_id: str, what: str) -> None:
    st.session_state[JOB] = {"job_id": job_id, "what": what}
    st.session_state.pop(RESULT, None)


def done(kind: str, message: str) -> None:
    """An action that needs no job (a deletion) finished: show `message`, refresh the page."""
    st.session_state[RESULT] = {"kind": kind, "message": message}
    st.rerun()


def _progress_text(what: str, job: dict[str, Any]) -> tuple[float, str]:
    progress = job.get("progress") or {}
    done_files, total = int(progress.get("done") or 0), progress.get("total")
    if job.get("state") == "queued":
        return 0.0, f"{what}: queued behind another ingest job…"
    if not total:
        return 0.0, f"{what}: looking for changed files…"
    current = progress.get("current")
    text = f"{what}: {done_files} of {total} file(s) done"
    return min(done_files / total, 1.0), text + (f" · {md(current)}" if current else "")


def follow(client: ServiceClient, panel: Any) -> None:
    """Follow the session's job until it ends, then keep its outcome and rerun the page."""
    job = st.session_state.get(JOB)
    if not job:
        return
    with panel:
        bar = st.progress(0.0, text=f"{md(job['what'])}: starting…")
        while True:
            try:
                state = client.job(job["job_id"])
            except RagkbError as exc:
                outcome = {"kind": "error", "message": f"Lost track of the ingest job {job['job_id']}: {exc}"}
                break
            fraction, text = _progress_text(md(job["what"]), state)
            bar.progress(fraction, text=text)
            if state["state"] == "done":
                outcome = {"kind": "job", "what": job["what"], "summary": state.get("summary") or {}}
                break
            if state["state"] == "failed":
                outcome = {"kind": "error", "message": f"{job['what']} failed: {state.get('error') or 'see the service log'}"}
                break
            time.sleep(POLL_S)
    st.session_state.pop(JOB, None)
    st.session_state[RESULT] = outcome
    st.rerun()  # the status above must show the new counts


def show_result(problems: list[str]) -> None:
    """Problems found before anything was sent, then the outcome of the last action."""
    for problem in problems:
        st.error(md(problem))
    result = st.session_state.get(RESULT)
    if not result:
        return
    if result["kind"] != "job":
        (st.success if result["kind"] == "ok" else st.error)(md(result["message"]))
        return
    summary = result["summary"]
    failed, skipped = summary.get("failed") or [], summary.get("skipped") or []
    (st.warning if failed else st.success)(md(f"{result['what']} finished: {summary_line(summary)}"))
    rows = [{"file": f.get("path"), "reason": f.get("error")} for f in failed if isinstance(f, dict)]
    rows += [{"file": s.get("path"), "reason": f"skipped: {s.get('reason')}"} for s in skipped if isinstance(s, dict)]
    if rows:  # a dataframe shows its cells as plain text: no escaping
        st.dataframe(rows, hide_index=True, width="stretch", key="job_problems")
