"""ragkb's Streamlit UI: sign-in, then the chat page and (for admins) the admin page.

Started by `ragkb serve` (beside the HTTP API it talks to) or `ragkb ui`, as `streamlit run
ui/app.py`. The UI never opens the knowledge base: every question, document list, upload and
deletion is a call to the ragkb service (`ragkb.client.ServiceClient`); with no service running
it shows how to start one. The pages are `chat.py` and `admin.py` beside this file; the pieces
they share are the `ui` package's modules: `kbui` (settings, the service and its client, who is
signed in), `markup` (untrusted text made inert as Markdown: every document- or model-derived
string goes through `markup.md` before Streamlit renders it), `sources` (citations) and `jobs`
(ingest jobs on the admin page).

Who may do what:
- no users file (RAGKB_USERS_FILE unset): single-user mode, no ACL filter, admin page for all;
- users file: sign in with name + password (argon2), groups from the file, ACLs enforced by the
  service in every Qdrant query, admin page only for the group `admin`;
- RAGKB_TRUSTED_USER_HEADER set: a reverse proxy has authenticated the user and names them in
  that header; groups still come only from the users file.
The UI checks who the user is; the service, called with its local token and the user's name,
checks that the user exists and applies their groups.
"""

from __future__ import annotations

import streamlit as st

from ragkb import users
from ragkb.errors import AccessError, RagkbError
from ui import kbui
from ui.markup import md

st.set_page_config(
    page_title="ragkb",
    # An emoji becomes a data: URI; a :material/...: favicon would be fetched from fonts.gstatic.com.
    page_icon="📚",
    layout="wide",
    menu_items={
        "Get help": None,
        "Report a bug": None,
        "About": "ragkb: a private knowledge base. Questions, documents and answers stay on this server.",
    },
)

try:
    settings = kbui.load_settings()
    mode = users.auth_mode(settings)  # a users file configured but missing stops here: fail closed
except Exception as exc:  # noqa: BLE001 - a bad ragkb.toml, RAGKB_* value or users file: say which, stop
    st.error(f"ragkb configuration error: {md(exc)}")
    st.stop()

service = kbui.find_service(settings)
if service is None:
    kbui.no_service_page(settings)


def _identity() -> users.Identity | None:
    """The user of this run, or None when they still have to sign in."""
    if mode == "anonymous":
        return users.ANONYMOUS
    try:
        if mode == "header":
            return users.identity_from_header(settings, st.context.headers)
        signed_in: users.Identity | None = st.session_state.get("identity")
        if signed_in is None:
            return None
        # Re-read the users file every run: a removed user or a changed group applies at once.
        return users.identity_refreshed(settings, signed_in)
    except RagkbError as exc:  # unknown user, or the users file became unreadable
        if isinstance(exc, AccessError):
            st.session_state.pop("identity", None)
        st.error(md(exc))
        st.stop()


def _login_page() -> None:
    st.title("Sign in to ragkb")
    with st.form("login"):
        name = st.text_input("User name", key="login_user", autocomplete="username")
        password = st.text_input("Password", type="password", key="login_password", autocomplete="current-password")
        submitted = st.form_submit_button("Sign in", type="primary")
    if submitted:
        try:
            identity = users.identity_from_password(settings, name, password)
        except RagkbError as exc:
            st.error(md(exc))
            return
        st.session_state["identity"] = identity
        st.session_state.pop("login_password", None)
        st.rerun()


identity = _identity()
if identity is None:
    st.navigation([st.Page(_login_page, title="Sign in", icon=":material/login:")], position="hidden").run()
    st.stop()

ctx = kbui.Context(settings, identity, service, kbui.client_for(service, identity))
kbui.set_context(ctx)

with st.sidebar:
    if identity.name is None:
        st.caption("Single-user mode: no users file is configured, so every document is visible.")
    else:
        st.markdown(f"Signed in as **{md(identity.name)}**")
        st.caption("Groups: " + md(", ".join(identity.groups or ()) or "none"))
        if identity.via == "password" and st.button("Sign out", icon=":material/logout:"):
            for key in ("identity", "messages"):
                st.session_state.pop(key, None)
            st.rerun()
    try:
        status = kbui.cached_status(ctx)  # also proves the service answers and knows this user
    except RagkbError as exc:
        kbui.stop_on(exc, "The ragkb service could not be asked for its status")
    llm = status.get("llm") or {}
    st.markdown(f"**Model:** {md(llm.get('backend', 'unknown'))}")
    st.caption(md(llm.get("reason", "")))
    st.markdown(f"**Collection:** {md(status.get('collection', ''))}")
    st.caption(md(f"{status.get('qdrant', '')}, served by the ragkb service at {service.url}"))

pages = [st.Page("chat.py", title="Ask", icon=":material/chat:", default=True)]
if identity.is_admin:
    pages.append(st.Page("admin.py", title="Admin", icon=":material/settings:"))
st.navigation(pages, position="sidebar" if len(pages) > 1 else "hidden").run()
