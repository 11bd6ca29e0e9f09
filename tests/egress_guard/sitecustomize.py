"""Loaded by every Python process whose PYTHONPATH includes this folder (see test_no_egress.py).

A CPython audit hook sees every DNS lookup and socket connect, whichever library makes it; any
non-loopback destination is recorded and refused, so a test can prove nothing tried to leave.
"""

import ipaddress
import os
import socket
import sys

_LOG = os.environ.get("EGRESS_GUARD_LOG")


def _loopback(host: object) -> bool:
    if host is None or host in ("", "localhost") or (isinstance(host, str) and host.endswith(".localhost")):
        return True
    if isinstance(host, bytes):
        host = host.decode()
    try:
        return ipaddress.ip_address(str(host).split("%")[0]).is_loopback
    except ValueError:
        return False


def _deny(kind: str, host: object) -> None:
    if _LOG:
        with open(_LOG, "a", encoding="utf-8") as log:
            log.write(f"{kind} {host!r} pid={os.getpid()} argv={sys.argv!r}\n")
    raise ConnectionRefusedError(f"egress blocked by test guard: {kind} {host!r}")


def _hook(event: str, args: tuple) -> None:
    if event == "socket.getaddrinfo" and not _loopback(args[0]):
        _deny("dns", args[0])
    elif event == "socket.connect":
        sock, address = args[0], args[1]
        if sock.family in (socket.AF_INET, socket.AF_INET6) and not _loopback(address[0]):
            _deny("connect", address[0])


if _LOG:
    sys.addaudithook(_hook)
