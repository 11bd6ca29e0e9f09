"""ragkb's Streamlit UI: sign-in, then the chat page and (for admins) the admin page.

Started by `ragkb ui` (or docker-compose) as `streamlit run ui/app.py`. Everything it knows
comes from `ragkb`; the pages are `chat.py` and `admin.py` beside this file and the shared
pieces are in `kbui.py`.

Who may do what:
- no users file (RAGKB_USERS_FILE unset): single-user mode, no ACL filter, admin page for all;
- users file: sign in with name + password (argon2), groups from the file, ACLs enforced in
  every Qdrant query, admin page only for the group `admin`;
- RAGKB_TRUSTED_USER_HEADER set: a reverse proxy has authenticated the user and names them in
  that header; groups still come only from the users file.
"""

from __future__ import annotations

import sys
from pathlib import Path

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

import streamlit as st  # noqa: E402

import kbui  # noqa: E402
from ragkb.access import AccessError  # noqa: E402

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
except Exception as exc:  # noqa: BLE001 - a bad ragkb.toml or RAGKB_* value: say which, stop
    st.error(f"ragkb configuration error: {exc}")
    st.stop()


def _identity() -> kbui.Identity | None:
    """The user of this run, or None when they still have to sign in."""
    mode = kbui.auth_mode(settings)
    if mode == "anonymous":
        return kbui.ANONYMOUS
    try:
        if mode == "header":
            return kbui.identity_from_header(settings, st.context.headers)
        signed_in: kbui.Identity | None = st.session_state.get("identity")
        if signed_in is None:
            return None
        # Re-read the users file every run: a removed user or a changed group applies at once.
        return kbui.identity_from_stored(settings, signed_in)
    except AccessError as exc:
        st.session_state.pop("identity", None)
        st.error(str(exc))
        st.stop()


def _login_page() -> None:
    st.title("Sign in to ragkb")
    with st.form("login"):
        name = st.text_input("User name", key="login_user", autocomplete="username")
        password = st.text_input("Password", type="password", key="login_password", autocomplete="current-password")
        submitted = st.form_submit_button("Sign in", type="primary")
    if submitted:
        try:
            identity = kbui.identity_from_password(settings, name, password)
        except AccessError as exc:
            st.error(str(exc))
            return
        st.session_state["identity"] = identity
        st.session_state.pop("login_password", None)
        st.rerun()


identity = _identity()
if identity is None:
    st.navigation([st.Page(_login_page, title="Sign in", icon=":material/login:")], position="hidden").run()
    st.stop()

kbui.set_context(settings, identity)

with st.sidebar:
    if identity.name is None:
        st.caption("Single-user mode: no users file is configured, so every document is visible.")
    else:
        st.markdown(f"Signed in as **{identity.name}**")
        st.caption("Groups: " + (", ".join(identity.groups or ()) or "none"))
        if identity.via == "password" and st.button("Sign out", icon=":material/logout:"):
            for key in ("identity", "messages"):
                st.session_state.pop(key, None)
            st.rerun()
    backend = kbui.backend_info(settings)
    st.markdown(f"**Model:** `{backend['backend']}`")
    st.caption(backend["reason"])
    st.markdown(f"**Collection:** `{settings.collection}`")
    st.caption(settings.qdrant_url or f"embedded Qdrant at {settings.qdrant_path}")

pages = [st.Page("chat.py", title="Ask", icon=":material/chat:", default=True)]
if identity.is_admin:
    pages.append(st.Page("admin.py", title="Admin", icon=":material/settings:"))
st.navigation(pages, position="sidebar" if len(pages) > 1 else "hidden").run()
