"""Who is calling: a per-user API token, the trusted proxy header, the service's local token,
or nobody (single-user mode, which the service only allows on a loopback address).

The local token is written to RAGKB_HOME/service.json (mode 0600) for the owner's own CLI and
for the UI that `ragkb serve` starts: whoever can read that file can already read the store and
the users file, so it may act as any user it names (`X-Ragkb-User`) or, naming none, as the
operator (no ACL filter, admin), exactly like the in-process CLI.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Any

from ragkb.config import Settings
from ragkb.errors import AccessError, AuthenticationError
from ragkb.users import ANONYMOUS, Identity, get_user, identity_from_header, user_for_token, users_configured

USER_HEADER = "X-Ragkb-User"
CHANNEL_HEADER = "X-Ragkb-Channel"
OPERATOR = Identity("operator", None, "local")


@dataclass(frozen=True)
class Caller:
    identity: Identity
    channel: str  # audit channel: api, or cli / ui for the local clients


class ServiceAuth:
    def __init__(self, settings: Settings, local_token: str) -> None:
        self.settings = settings
        self._local = local_token

    def caller(self, headers: Any) -> Caller:
        token = _bearer(headers.get("authorization"))
        if token is not None and hmac.compare_digest(token.encode(), self._local.encode()):
            return self._local_caller(headers)
        if token is not None:
            user = user_for_token(self.settings, token)
            return Caller(Identity(user.name, user.groups, "token"), "api")
        if self.settings.trusted_user_header and headers.get(self.settings.trusted_user_header):
            return Caller(identity_from_header(self.settings, headers), "api")
        if users_configured(self.settings):
            raise AuthenticationError("authentication required: send Authorization: Bearer <token> (`ragkb users token NAME`)")
        return Caller(ANONYMOUS, "api")

    def _local_caller(self, headers: Any) -> Caller:
        channel = (headers.get(CHANNEL_HEADER) or "cli").strip()[:16] or "cli"
        name = (headers.get(USER_HEADER) or "").strip()
        if not name:
            return Caller(OPERATOR if users_configured(self.settings) else ANONYMOUS, channel)
        if not users_configured(self.settings):
            raise AccessError(f"{USER_HEADER} needs a users file: set RAGKB_USERS_FILE")
        user = get_user(self.settings, name)
        return Caller(Identity(user.name, user.groups, "local"), channel)


def _bearer(value: str | None) -> str | None:
    if not value:
        return None
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthenticationError("the Authorization header must be 'Bearer <token>'")
    return token.strip()
