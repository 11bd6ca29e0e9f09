"""Users and their groups, from a local TOML file with argon2 password hashes and hashed API
tokens.

The file is the only source of a user's groups, whichever way they authenticated (password in
the UI, --user on the CLI, an API token, or a trusted reverse-proxy header).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import tomllib
from dataclasses import dataclass
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from ragkb.config import Settings
from ragkb.errors import AccessError, AuthenticationError, BadInput, ConfigError

_NAME = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
_hasher = PasswordHasher()


TOKEN_PREFIX = "rkb_"


@dataclass(frozen=True)
class User:
    name: str
    groups: tuple[str, ...]
    password_hash: str = ""
    # sha256 of each API token: a token has 256 random bits, so a fast hash is enough and lets
    # every request be checked without argon2's deliberate slowness.
    token_hashes: tuple[str, ...] = ()


def users_configured(settings: Settings) -> bool:
    """True when a users file is configured. Configured but missing is an error, never a silent
    fall back to single-user mode (which would show every document to everyone)."""
    if settings.users_file is None:
        return False
    if not settings.users_file.is_file():
        raise ConfigError(
            f"users file {settings.users_file} (RAGKB_USERS_FILE) does not exist or is not a file: "
            "create it with `ragkb users add`, or unset RAGKB_USERS_FILE for single-user mode"
        )
    return True


def load_users(settings: Settings, missing_ok: bool = False) -> dict[str, User]:
    """All users; `missing_ok` only for `users add`, which creates the file."""
    if settings.users_file is None or (missing_ok and not settings.users_file.exists()):
        return {}
    users_configured(settings)
    try:
        data = tomllib.loads(settings.users_file.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read users file {settings.users_file}: {exc}") from exc
    users = {}
    for name, entry in (data.get("users") or {}).items():
        users[name] = User(
            name, tuple(sorted(entry.get("groups", []))), entry.get("password_hash", ""), tuple(entry.get("token_sha256", []))
        )
    return users


def get_user(settings: Settings, name: str) -> User:
    user = load_users(settings).get(name)
    if user is None:
        raise AccessError(f"unknown user '{name}' (not in {settings.users_file})")
    return user


def authenticate(settings: Settings, name: str, password: str) -> User:
    """Same error for unknown user and wrong password, so names cannot be probed."""
    user = load_users(settings).get(name)
    try:
        if user is None or not user.password_hash:
            raise VerificationError("no such user")
        _hasher.verify(user.password_hash, password)
    except (VerificationError, InvalidHashError) as exc:
        raise AuthenticationError("invalid user name or password") from exc
    return user


def add_user(settings: Settings, name: str, password: str, groups: list[str]) -> User:
    """Create or replace a user (keeping their API tokens); the file is rewritten atomically and
    kept private (0600). A user with no group reads only unrestricted documents (and nothing
    under `acl_default=deny`)."""
    if settings.users_file is None:
        raise ConfigError("set RAGKB_USERS_FILE (or users_file in ragkb.toml) first")
    if not _NAME.match(name) or not all(_NAME.match(g) and not g.startswith("__") for g in groups):
        raise BadInput("user and group names may use letters, digits and _ . @ - only (groups may not start with __)")
    users = load_users(settings, missing_ok=True)
    previous = users.get(name)
    users[name] = User(name, tuple(sorted(set(groups))), _hasher.hash(password), previous.token_hashes if previous else ())
    _write_users(settings, users)
    return users[name]


def issue_token(settings: Settings, name: str) -> str:
    """A new API token for an existing user; only its hash is stored, so it is shown once."""
    users = load_users(settings)
    user = users.get(name)
    if user is None:
        raise AccessError(f"unknown user '{name}' (not in {settings.users_file})")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    users[name] = User(user.name, user.groups, user.password_hash, (*user.token_hashes, token_hash(token)))
    _write_users(settings, users)
    return token


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def user_for_token(settings: Settings, token: str) -> User:
    """The user an API token belongs to; the same error for every bad token."""
    if users_configured(settings):
        digest = token_hash(token)
        for user in load_users(settings).values():
            if any(hmac.compare_digest(digest, known) for known in user.token_hashes):
                return user
    raise AuthenticationError("invalid API token")


def _write_users(settings: Settings, users: dict[str, User]) -> None:
    lines = []
    for user in sorted(users.values(), key=lambda u: u.name):
        lines += [f'[users."{user.name}"]', f"groups = {json.dumps(list(user.groups))}", f'password_hash = "{user.password_hash}"']
        if user.token_hashes:
            lines.append(f"token_sha256 = {json.dumps(list(user.token_hashes))}")
        lines.append("")
    path = settings.users_file
    assert path is not None
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines))
    os.replace(tmp, path)


# --- who is asking -------------------------------------------------------------------------------
ADMIN_GROUP = "admin"


@dataclass(frozen=True)
class Identity:
    """The caller of one request, however they authenticated."""

    name: str | None  # None: anonymous single-user mode
    groups: tuple[str, ...] | None  # None: no ACL filter
    via: str  # anonymous | password | header | token

    @property
    def acl_groups(self) -> list[str] | None:
        return None if self.groups is None else list(self.groups)

    @property
    def is_admin(self) -> bool:
        return self.groups is None or ADMIN_GROUP in self.groups


ANONYMOUS = Identity(None, None, "anonymous")


def auth_mode(settings: Settings) -> str:
    """header (a trusted proxy names the user), password (users file) or anonymous."""
    if settings.trusted_user_header:
        return "header"
    return "password" if users_configured(settings) else "anonymous"


def identity_from_header(settings: Settings, headers: Any) -> Identity:
    """SSO behind a reverse proxy: the proxy authenticates and names the user in a header;
    groups still come only from the users file."""
    header = settings.trusted_user_header or ""
    name = ((headers.get(header) if headers is not None else None) or "").strip()
    if not name:
        raise AuthenticationError(f"the request carries no {header} header: open the app through the sign-in proxy")
    user = get_user(settings, name)
    return Identity(user.name, user.groups, "header")


def identity_from_password(settings: Settings, name: str, password: str) -> Identity:
    user = authenticate(settings, name.strip(), password)
    return Identity(user.name, user.groups, "password")


def identity_refreshed(settings: Settings, signed_in: Identity) -> Identity:
    """A signed-in session keeps its name; its groups are read from the users file again, so a
    removed user or a changed group applies at once."""
    if signed_in.name is None:
        raise AuthenticationError("please sign in again")
    try:
        user = get_user(settings, signed_in.name)
    except AccessError:
        raise AuthenticationError(f"user '{signed_in.name}' no longer exists: please sign in again") from None
    return Identity(user.name, user.groups, signed_in.via)
