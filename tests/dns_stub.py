"""A recording DNS stub: answers every query NXDOMAIN and logs the name asked for.

Run inside a loopback-only network namespace whose /etc/resolv.conf says `nameserver 127.0.0.1`
(see netns_sandbox.py): every name that any code looks up through the system resolver, Python
or native (glibc's getaddrinfo, curl, onnxruntime's telemetry uploader, Chromium), arrives here
and is written to the log as `<time> <proto> <qtype> <name>`, one line per query. Nothing is
forwarded.

Stdlib only, so it also runs as `python tests/dns_stub.py --log FILE` without the venv.
"""

from __future__ import annotations

import argparse
import socket
import socketserver
import struct
import threading
import time
from pathlib import Path

NXDOMAIN = 3
FORMERR = 1
QTYPES = {1: "A", 2: "NS", 5: "CNAME", 6: "SOA", 12: "PTR", 15: "MX", 16: "TXT", 28: "AAAA", 33: "SRV", 64: "SVCB", 65: "HTTPS", 255: "ANY"}


def parse_question(message: bytes) -> tuple[str, str, int] | None:
    """(name, qtype, end offset of the question) of a query's first question, or None."""
    if len(message) < 12 or struct.unpack("!H", message[4:6])[0] < 1:
        return None
    labels, offset = [], 12
    while True:
        if offset >= len(message):
            return None
        length = message[offset]
        offset += 1
        if length == 0:
            break
        if length > 63 or offset + length > len(message):  # compression pointers never appear in a question
            return None
        # presentation format: anything but printable ASCII (and . or \\) as \DDD, so a name
        # can never break the one-line-per-query log
        labels.append("".join(chr(b) if 0x21 <= b < 0x7F and b not in b".\\" else f"\\{b:03d}" for b in message[offset : offset + length]))
        offset += length
    if offset + 4 > len(message):
        return None
    qtype = struct.unpack("!H", message[offset : offset + 2])[0]
    return ".".join(labels) or ".", QTYPES.get(qtype, str(qtype)), offset + 4


def answer(query: bytes) -> bytes:
    """NXDOMAIN for the question (FORMERR for a malformed query), echoing the question back."""
    parsed = parse_question(query)
    ident, flags = struct.unpack("!HH", query[:4]) if len(query) >= 4 else (0, 0)
    opcode_and_rd = flags & 0x7900  # opcode + RD from the query
    rcode = NXDOMAIN if parsed else FORMERR
    header = struct.pack("!HHHHHH", ident, 0x8000 | 0x0080 | opcode_and_rd | rcode, 1 if parsed else 0, 0, 0, 0)
    return header + (query[12 : parsed[2]] if parsed else b"")


class DnsStub:
    """UDP and TCP servers on host:port in daemon threads. `log` may be switched between runs
    (one log per step); `close()` stops both servers."""

    def __init__(self, log: Path, host: str = "127.0.0.1", port: int = 53) -> None:
        self.log = log
        self._lock = threading.Lock()
        stub = self

        class Udp(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                data, sock = self.request
                sock.sendto(stub.record("udp", data), self.client_address)

        class Tcp(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                while True:
                    size = self.rfile.read(2)
                    if len(size) < 2:
                        return
                    reply = stub.record("tcp", self.rfile.read(struct.unpack("!H", size)[0]))
                    self.wfile.write(struct.pack("!H", len(reply)) + reply)

        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        settings = {"address_family": family, "allow_reuse_address": True, "daemon_threads": True}
        self._servers: list[socketserver.BaseServer] = [
            type("UdpServer", (socketserver.ThreadingUDPServer,), settings)((host, port), Udp),
            type("TcpServer", (socketserver.ThreadingTCPServer,), settings)((host, port), Tcp),
        ]
        for server in self._servers:
            threading.Thread(target=server.serve_forever, daemon=True).start()

    def record(self, proto: str, query: bytes) -> bytes:
        parsed = parse_question(query)
        what = f"{parsed[1]} {parsed[0]}" if parsed else f"malformed {query[:64].hex()}"
        now = time.time()
        line = f"{time.strftime('%H:%M:%S', time.localtime(now))}.{int(now * 1000) % 1000:03d} {proto} {what}"
        with self._lock, self.log.open("a", encoding="utf-8") as out:
            out.write(line + "\n")
        return answer(query)

    def close(self) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()


def logged_names(log: Path) -> list[str]:
    """The names in a stub log, in order (`malformed` entries come back as their hex)."""
    if not log.exists():
        return []
    return [line.split(" ", 3)[3] for line in log.read_text(encoding="utf-8").splitlines() if line.count(" ") >= 3]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--log", type=Path, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=53)
    args = parser.parse_args()
    args.log.touch()
    stub = DnsStub(args.log, args.host, args.port)
    print(f"dns stub listening on {args.host}:{args.port}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        stub.close()


if __name__ == "__main__":
    main()
