"""A real HTTP server on 127.0.0.1 that speaks the Hugging Face Hub's resolve protocol.

``HEAD`` and ``GET`` on ``/{repo_id}/resolve/{revision}/{filename}`` answer with the
headers huggingface_hub reads (``X-Repo-Commit``, ``ETag``, ``X-Linked-Etag``,
``X-Linked-Size``, ``Content-Length``) and honour ``Range`` for resumed downloads.
Every request is counted, so tests can assert that a cached load makes none. A file's
``mode`` makes it misbehave on purpose: ``"corrupt"`` (other bytes of the same size),
``"truncated"`` (announces the full length, sends half, closes), ``"404"``, ``"500"``.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class HostedFile:
    data: bytes
    commit: str
    mode: str = "ok"

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


@dataclass
class FakeHub:
    files: dict[tuple[str, str, str], HostedFile] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)
    authorizations: list[str | None] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, repo_id: str, filename: str, data: bytes, commit: str, mode: str = "ok") -> None:
        self.files[(repo_id, commit, filename)] = HostedFile(data, commit, mode)

    def count(self, method: str | None = None) -> int:
        with self.lock:
            return sum(1 for m, _ in self.requests if method is None or m == method)

    def reset_counts(self) -> None:
        with self.lock:
            self.requests.clear()
            self.authorizations.clear()


def _handler(hub: FakeHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:  # keep test output clean
            pass

        def _lookup(self) -> HostedFile | None:
            path = self.path.split("?", 1)[0].lstrip("/")
            if "/resolve/" not in path:
                return None
            repo_id, rest = path.split("/resolve/", 1)
            revision, _, filename = rest.partition("/")
            return hub.files.get((repo_id, revision, filename))

        def _error(self, status: int, code: str) -> None:
            body = f'{{"error": "{code}"}}'.encode()
            self.send_response(status)
            self.send_header("X-Error-Code", code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _serve(self, with_body: bool) -> None:
            with hub.lock:
                hub.requests.append((self.command, self.path))
                hub.authorizations.append(self.headers.get("Authorization"))
            hosted = self._lookup()
            if hosted is None or hosted.mode == "404":
                return self._error(404, "EntryNotFound")
            if hosted.mode == "500":
                return self._error(500, "InternalError")
            data = hosted.data
            if hosted.mode == "corrupt":
                data = bytes(b ^ 0xFF for b in data[:64]) + data[64:]
            start = 0
            range_header = self.headers.get("Range")
            if range_header and range_header.startswith("bytes="):
                start = int(range_header[len("bytes=") :].split("-")[0] or 0)
            body = data[start:]
            self.send_response(206 if start else 200)
            self.send_header("X-Repo-Commit", hosted.commit)
            self.send_header("ETag", f'"{hosted.sha256}"')
            self.send_header("X-Linked-Etag", f'"{hosted.sha256}"')
            self.send_header("X-Linked-Size", str(len(hosted.data)))
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(body)))
            if start:
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            self.end_headers()
            if not with_body:
                return None
            if hosted.mode == "truncated":
                self.wfile.write(body[: len(body) // 2])
                self.wfile.flush()
                self.close_connection = True
                return None
            self.wfile.write(body)
            return None

        def do_HEAD(self) -> None:
            self._serve(with_body=False)

        def do_GET(self) -> None:
            self._serve(with_body=True)

    return Handler


class HubServer:
    """Context manager: ``with HubServer(hub) as url: ...`` serves ``hub`` on a free port."""

    def __init__(self, hub: FakeHub) -> None:
        self.hub = hub
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(hub))
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> str:
        self.thread.start()
        return self.url

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
