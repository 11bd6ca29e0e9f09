"""Chat page: streamed answers from the service, numbered citation chips, source preview with
the cited passage highlighted, a download of the original file, and thumbs up/down feedback.

The conversation is kept: each question goes to the service with the earlier turns of this
session, so a follow-up ("and the second one?") is understood. Answers, file names, paths,
sections and warnings come from documents or the model: each goes through `md()` (or
`html.escape` in the preview) before Streamlit renders it as Markdown.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

import streamlit as st

from ragkb.errors import BadInput, RagkbError, StoreError
from ragkb.filetypes import DOC_TYPES
from ragkb.questions import check_question
from ui import kbui, sources
from ui.markup import md

log = logging.getLogger("ragkb.ui")

ctx = kbui.context()
settings, identity, client = ctx.settings, ctx.identity, ctx.client
try:
    documents = client.documents("ok")  # what this user may read (admins: every document)
except RagkbError as exc:
    kbui.stop_on(exc, "Could not list the documents")
messages: list[dict[str, Any]] = st.session_state.setdefault("messages", [])

with st.sidebar:
    st.subheader("Search")
    top_k = st.slider("Passages to use (top-k)", min_value=1, max_value=20, value=min(max(settings.top_k, 1), 20), key="top_k")
    file_types = st.multiselect(
        "Document type", DOC_TYPES, key="file_types", placeholder="All types", help="Only cite documents of these types"
    )
    folder = st.selectbox(
        "Folder",
        kbui.folders([d["path"] for d in documents]),
        index=None,
        key="folder",
        placeholder="All folders",
        accept_new_options=True,
        help="Only cite documents under this folder (pick one or type a path)",
    )
    if messages and st.button("Clear conversation", icon=":material/delete_sweep:"):
        messages.clear()
        st.rerun()


def _timings(result: dict[str, Any]) -> str:
    parts = [f"{name} {ms:,.0f} ms" for name, ms in (result.get("timings_ms") or {}).items()]
    return md(f"Answered by {result.get('backend', 'unknown')} · " + " · ".join(parts))


def _render_source(c: sources.Citation, msg_id: str) -> None:
    name = sources.file_name(c)
    title = f"[{c['n']}] {name}"
    with st.container(border=True, key=f"source-{msg_id}"):
        st.markdown(f"**{md(title)}** — {sources.location(c)}")
        st.caption(md(f"{c.get('source')} · relevance {float(c.get('score') or 0):.3f}"))
        before, after = sources.neighbours(client, identity.name, c)
        st.html(sources.highlighted_html(str(c.get("text") or ""), before, after))
        if sources.available(client, str(c.get("source") or "")):
            st.download_button(
                md(f"Download {name}"),
                data=sources.file_reader(client, str(c["source"])),
                file_name=name,
                mime=sources.mime_type(c),
                key=f"download-{msg_id}-{c['n']}",
                icon=":material/download:",
                on_click="ignore",
            )
        else:
            st.caption("The original file is no longer available (moved, deleted or forgotten since ingest).")


def _send_feedback(msg: dict[str, Any]) -> None:
    """thumbs: 1 up, 0 down, None when taken back (nothing is sent then)."""
    value = st.session_state.get(f"feedback-{msg['id']}")
    msg.pop("feedback_error", None)
    if value is None:
        return
    try:
        client.feedback(msg["result"]["answer_id"], 1 if value == 1 else -1)
        msg["rated"] = 1 if value == 1 else -1
    except RagkbError as exc:
        log.warning("feedback failed: %s", exc)
        msg["feedback_error"] = f"Your rating was not saved: {exc}"


def _render_answer(msg: dict[str, Any]) -> None:
    result: dict[str, Any] = msg["result"]
    standalone = result.get("standalone_question")
    if standalone and standalone.strip() != msg.get("question", "").strip():
        st.caption(md(f"Understood as: {standalone}"))
    st.markdown(md(result.get("answer", "")))
    flagged = bool(result.get("flagged"))
    if flagged:
        st.warning("This answer cites none of the retrieved passages: check it against the sources below.", icon=":material/report:")
    for warning in result.get("warnings") or []:
        if not (flagged and "cites none" in warning):
            st.warning(md(warning), icon=":material/warning:")
    chips, label = result.get("citations") or [], "Sources"
    if not chips and result.get("passages"):
        chips, label = result["passages"], "Retrieved passages (not cited by the answer)"
    if chips:
        by_n = {c["n"]: c for c in chips}
        chosen = st.pills(
            label,
            options=list(by_n),
            format_func=lambda n: sources.citation_label(by_n[n]),
            selection_mode="single",
            key=f"cite-{msg['id']}",
        )
        if chosen is not None and chosen in by_n:
            _render_source(by_n[chosen], msg["id"])
    why = result.get("backend_reason") or kbui.backend_reason(ctx, str(result.get("backend")))
    st.caption(_timings(result), help=md(why) if why else None)  # which backend answered, and why
    if result.get("answer_id"):
        st.feedback("thumbs", key=f"feedback-{msg['id']}", on_change=_send_feedback, args=(msg,))
        if msg.get("feedback_error"):
            st.error(md(msg["feedback_error"]))
        elif msg.get("rated"):
            st.caption("Thanks: your rating helps improve the answers.")


def _render(msg: dict[str, Any]) -> None:
    with st.chat_message(msg["role"]):
        if msg["role"] == "user":
            st.markdown(md(msg["content"]))
        elif msg.get("error"):
            st.error(md(msg["error"]))
        else:
            _render_answer(msg)


def _ask(question: str) -> dict[str, Any]:
    """Stream one answer into the page; returns the message to keep in the conversation."""
    msg_id = uuid.uuid4().hex[:12]
    filters = {"file_types": list(file_types), "folder": folder} if file_types or folder else None
    with st.chat_message("assistant"):
        status = st.empty()
        body = st.empty()
        status.caption("Searching the documents…")
        text = ""
        result: dict[str, Any] | None = None
        try:
            events = client.ask_stream(question, top_k=top_k, filters=filters, history=kbui.history(messages))
            for name, data in events:
                if name == "passages":
                    found = len(data.get("passages") or [])
                    status.caption(f"Found {found} passage{'s' if found != 1 else ''}; answering…" if found else "No matching passage.")
                elif name == "token":
                    text += str(data.get("text", ""))
                    body.markdown(md(text) + " ▌")
                elif name == "done":
                    result = data
            if result is None:
                raise StoreError("the service ended the answer without a result; its log says why")
        except Exception as exc:  # noqa: BLE001 - service, store or model failure: show it, keep the session
            if isinstance(exc, RagkbError):  # its message says what is wrong and what to do
                log.warning("answering failed: %s", exc)
            else:
                log.exception("answering failed")
            error = f"Could not answer: {exc}"
            if isinstance(exc, StoreError) and not kbui.service_answers(ctx.service):
                error += " (the ragkb service is not running: start it with `ragkb serve`)"
            status.empty()
            body.empty()
            st.error(md(error))
            return {"id": msg_id, "role": "assistant", "error": error}
        status.empty()
        body.empty()
        msg = {"id": msg_id, "role": "assistant", "result": result, "question": question}
        _render_answer(msg)
    return msg


st.title("Ask the knowledge base")
if not documents and not messages:
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
