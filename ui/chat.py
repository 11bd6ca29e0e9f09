"""Chat page: streamed answers, numbered citation chips, source preview with the cited passage
highlighted, and a download of the original file.

Answers, file names, paths, sections and warnings come from documents or the model: each goes
through `md()` (or `html.escape` in the preview) before Streamlit renders it as Markdown.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

import streamlit as st

from ragkb.answer import AnswerResult, Citation
from ragkb.errors import BadInput, RagkbError
from ragkb.retrieve import Filters, check_question
from ui import kbui, sources
from ui.markup import md

log = logging.getLogger("ragkb.ui")

settings, identity = kbui.context()
runtime = kbui.runtime(settings)
rows = kbui.readable_rows(runtime.manifest.sources(), identity, settings)
messages: list[dict[str, Any]] = st.session_state.setdefault("messages", [])

with st.sidebar:
    st.subheader("Search")
    top_k = st.slider("Passages to use (top-k)", min_value=1, max_value=20, value=min(max(settings.top_k, 1), 20), key="top_k")
    file_types = st.multiselect(
        "Document type", kbui.DOC_TYPES, key="file_types", placeholder="All types", help="Only cite documents of these types"
    )
    folder = st.selectbox(
        "Folder",
        kbui.folders(rows),
        index=None,
        key="folder",
        placeholder="All folders",
        accept_new_options=True,
        help="Only cite documents under this folder (pick one or type a path)",
    )
    if messages and st.button("Clear conversation", icon=":material/delete_sweep:"):
        messages.clear()
        st.rerun()


def _timings(result: AnswerResult) -> str:
    parts = [f"{name} {ms:,.0f} ms" for name, ms in result.timings_ms.items()]
    return md(f"Answered by {result.backend} · " + " · ".join(parts))


def _render_source(c: Citation, msg_id: str) -> None:
    name = sources.file_name(c)
    with st.container(border=True, key=f"source-{msg_id}"):
        st.markdown(f"**{md(f'[{c.n}] {name}')}** — {sources.location(c)}")
        st.caption(md(f"{c.source} · relevance {c.score:.3f}"))
        try:
            before, after = sources.neighbours(kbui.runtime_key(settings), c.doc_id, c.text, _runtime=runtime)
        except Exception:  # noqa: BLE001 - the passage alone is still worth showing
            log.exception("could not load the text around a cited passage")
            before, after = "", ""
        st.html(sources.highlighted_html(c.text, before, after))
        if kbui.may_download(c.source, identity, settings, rows):
            st.download_button(
                md(f"Download {name}"),
                data=sources.file_reader(c.source),
                file_name=name,
                mime=sources.mime_type(c.source),
                key=f"download-{msg_id}-{c.n}",
                icon=":material/download:",
                on_click="ignore",
            )
        else:
            st.caption("The original file is no longer available (moved, deleted or forgotten since ingest).")


def _render_answer(msg: dict[str, Any]) -> None:
    result: AnswerResult = msg["result"]
    st.markdown(md(result.answer))
    if result.flagged:
        st.warning("This answer cites none of the retrieved passages: check it against the sources below.", icon=":material/report:")
    for warning in result.warnings:
        if not (result.flagged and "cites none" in warning):
            st.warning(md(warning), icon=":material/warning:")
    chips = result.citations
    label = "Sources"
    if not chips and result.passages:
        chips, label = result.passages, "Retrieved passages (not cited by the answer)"
    if chips:
        by_n = {c.n: c for c in chips}
        chosen = st.pills(
            label,
            options=list(by_n),
            format_func=lambda n: sources.citation_label(by_n[n]),
            selection_mode="single",
            key=f"cite-{msg['id']}",
        )
        if chosen is not None and chosen in by_n:
            _render_source(by_n[chosen], msg["id"])
    st.caption(_timings(result))


def _render(msg: dict[str, Any]) -> None:
    with st.chat_message(msg["role"]):
        if msg["role"] == "user":
            st.markdown(md(msg["content"]))
        elif msg.get("error"):
            st.error(md(msg["error"]))
        else:
            _render_answer(msg)


def _ask(question: str) -> dict[str, Any]:
    """Stream one answer into the page; returns the message to keep in the history."""
    msg_id = uuid.uuid4().hex[:12]
    filters = Filters(file_types=tuple(file_types), folder=folder or None)
    with st.chat_message("assistant"):
        status = st.empty()
        body = st.empty()
        status.caption("Searching the documents…")
        text = ""
        result: AnswerResult | None = None
        try:
            for event in kbui.answerer(settings).stream(question, groups=identity.acl_groups, top_k=top_k, filters=filters):
                if event.kind == "passages":
                    found = len(event.passages)
                    status.caption(f"Found {found} passage{'s' if found != 1 else ''}; answering…" if found else "No matching passage.")
                elif event.kind == "token":
                    text += event.text
                    body.markdown(md(text) + " ▌")
                elif event.kind == "done":
                    result = event.result
        except Exception as exc:  # noqa: BLE001 - store or model failure: show it, keep the session
            if isinstance(exc, RagkbError):  # its message says what is wrong and what to do
                log.warning("answering failed: %s", exc)
            else:
                log.exception("answering failed")
            error = f"Could not answer: {exc}"
            status.empty()
            body.empty()
            st.error(md(error))
            return {"id": msg_id, "role": "assistant", "error": error}
        status.empty()
        body.empty()
        assert result is not None
        msg = {"id": msg_id, "role": "assistant", "result": result}
        try:
            runtime.audit_answer(result, user=identity.name, channel="ui")
        except OSError as exc:
            log.exception("audit log write failed")
            result.warnings.append(f"the audit log could not be written: {exc}")
        _render_answer(msg)
    return msg


st.title("Ask the knowledge base")
if not rows and not messages:
    st.info("No documents are ingested yet" + (": add some on the Admin page." if identity.is_admin else "."))
for message in messages:
    _render(message)

question = st.chat_input("Ask a question about your documents", max_chars=settings.max_question_chars)
if question and question.strip():
    try:
        question = check_question(question, settings.max_question_chars)
    except BadInput as exc:  # the box stops at the limit, but a client can send more
        st.error(md(exc))
        st.stop()
    user_msg = {"id": uuid.uuid4().hex[:12], "role": "user", "content": question}
    _render(user_msg)
    answer_msg = _ask(question)
    # Kept only once complete: a question interrupted by the next one leaves no half entry.
    messages.extend([user_msg, answer_msg])
