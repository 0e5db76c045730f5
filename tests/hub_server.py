"""A real HTTP server on 127.0.0.1 that speaks the Hugging Face Hub's resolve (download)
and upload protocols, as huggingface_hub 2.x calls them.

Download: ``HEAD`` and ``GET`` on ``/{repo_id}/resolve/{revision}/{filename}`` answer
with the headers huggingface_hub reads (``X-Repo-Commit``, ``ETag``, ``X-Linked-Etag``,
``X-Linked-Size``, ``Content-Length``) and honour ``Range`` for resumed downloads. A
file's ``mode`` makes it misbehave on purpose: ``"corrupt"`` (other bytes of the same
size), ``"truncated"`` (announces the full length, sends half, closes), ``"404"``,
``"500"``.

Upload (what ``HfApi.create_repo`` + ``create_commit`` send, model repos, branch
``main``):

- ``POST /api/repos/create``: 200 ``{"url"}``, 409 if the repo exists.
- ``POST /api/validate-yaml``: parses the README's front matter with ``yaml.safe_load``;
  400 ``{"errors": [...]}`` unless it is a YAML mapping.
- ``POST /api/models/{repo}/preupload/main``: ``uploadMode`` ``"lfs"`` for
  ``*.safetensors`` and files of 10 MB or more, else ``"regular"``.
- ``POST /{repo}.git/info/lfs/objects/batch``: git-lfs "basic" transfer; each object
  gets an upload href (``PUT``, sha256 checked) and a verify href on this server, or no
  actions when its bytes are already stored.
- ``POST /api/models/{repo}/commit/main``: the ndjson commit (``header``, ``file`` with
  base64 content, ``lfsFile`` naming an uploaded oid, ``deletedFile``). It makes a new
  40-hex commit sha and serves every file of the repo at that sha and at ``main``.

Not spoken: the xet protocol (a separate CAS server). huggingface_hub uploads through
it whenever the ``hf_xet`` package is importable, so tests that upload must disable it
(``huggingface_hub.constants.HF_HUB_DISABLE_XET = True``, or ``HF_HUB_DISABLE_XET=1``
in a subprocess); it then falls back to the LFS protocol above, which the Hub supports.

With ``FakeHub(write_token="hf_...")`` every upload request except the ``PUT`` of LFS
bytes (pre-signed on the real Hub, sent without a token) needs ``Authorization: Bearer
<token>``, else 401. Every request is counted with its ``Authorization`` header, so tests
can assert that a cached load makes none, or that each write carried the token.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import yaml

LFS_THRESHOLD = 10 * 1024 * 1024  # from this size on the Hub takes a file only through LFS
_PREUPLOAD = re.compile(r"^/api/models/(?P<repo>[^/]+/[^/]+)/preupload/(?P<revision>[^/]+)$")
_COMMIT = re.compile(r"^/api/models/(?P<repo>[^/]+/[^/]+)/commit/(?P<revision>[^/]+)$")
_BATCH = re.compile(r"^/(?P<repo>[^/]+/[^/]+)\.git/info/lfs/objects/batch$")
_LFS_OBJECT = re.compile(r"^/lfs-objects/(?P<oid>[0-9a-f]{64})(?P<verify>/verify)?$")
_FRONT_MATTER = re.compile(r"\A\s*---\r?\n(?P<yaml>[\s\S]*?)\r?\n---[ \t]*(\r?\n|\Z)")


@dataclass
class HostedFile:
    data: bytes
    commit: str
    mode: str = "ok"

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


class HubError(Exception):
    """An error answer: status, ``X-Error-Code`` and message (the JSON ``error``)."""

    def __init__(self, status: int, code: str, message: str = "", **extra: Any) -> None:
        super().__init__(message or code)
        self.status, self.code, self.message, self.extra = status, code, message or code, extra


@dataclass
class FakeHub:
    files: dict[tuple[str, str, str], HostedFile] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)
    authorizations: list[str | None] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    write_token: str | None = None  # None: uploads need no token
    repos: dict[str, dict[str, bytes]] = field(default_factory=dict)  # files on main
    commits: dict[str, list[str]] = field(default_factory=dict)  # oldest first
    lfs: dict[str, bytes] = field(default_factory=dict)  # uploaded LFS bytes by sha256

    def add(self, repo_id: str, filename: str, data: bytes, commit: str, mode: str = "ok") -> None:
        self.files[(repo_id, commit, filename)] = HostedFile(data, commit, mode)

    def count(self, method: str | None = None) -> int:
        with self.lock:
            return sum(1 for m, _ in self.requests if method is None or m == method)

    def reset_counts(self) -> None:
        with self.lock:
            self.requests.clear()
            self.authorizations.clear()

    # The upload protocol. Each method takes the parsed request and returns the JSON
    # answer or raises HubError; the handler holds ``lock`` around the call.

    def _repo(self, repo_id: str, revision: str = "main") -> dict[str, bytes]:
        if repo_id not in self.repos:
            raise HubError(404, "RepoNotFound", f"Repository {repo_id} not found")
        if revision != "main":  # branches other than main are not modelled
            raise HubError(404, "RevisionNotFound", f"Invalid rev id: {revision}")
        return self.repos[repo_id]

    def create_repo(self, base_url: str, body: dict[str, Any]) -> dict[str, Any]:
        repo_id = "/".join(p for p in (body.get("organization"), body["name"]) if p)
        url = f"{base_url}/{repo_id}"
        if repo_id in self.repos:
            raise HubError(409, "", "You already created this model repo", url=url)
        self.repos[repo_id], self.commits[repo_id] = {}, []
        return {"url": url, "name": repo_id}

    @staticmethod
    def validate_yaml(body: dict[str, Any]) -> dict[str, Any]:
        found = _FRONT_MATTER.match(body.get("content", ""))
        if found is None:
            return {"errors": [], "warnings": []}  # no metadata block: nothing to check
        try:
            meta = yaml.safe_load(found["yaml"])
        except yaml.YAMLError as exc:
            problem = f"YAML metadata is not valid: {exc}"
        else:
            if isinstance(meta, dict):
                return {"errors": [], "warnings": []}
            problem = f"YAML metadata must be a mapping, got {type(meta).__name__}"
        raise HubError(400, "", problem, errors=[{"message": problem}], warnings=[])

    def preupload(self, repo_id: str, revision: str, body: dict[str, Any]) -> dict[str, Any]:
        self._repo(repo_id, revision)
        return {
            "files": [
                {
                    "path": f["path"],
                    "uploadMode": "lfs"
                    if f["path"].endswith(".safetensors") or f["size"] >= LFS_THRESHOLD
                    else "regular",
                    "shouldIgnore": False,
                    "oid": None,  # no earlier version to compare with
                }
                for f in body["files"]
            ]
        }

    def lfs_batch(self, base_url: str, repo_id: str, body: dict[str, Any]) -> dict[str, Any]:
        self._repo(repo_id)
        if body.get("operation") != "upload" or "basic" not in body.get("transfers", ["basic"]):
            raise HubError(400, "", "only uploads with the basic transfer are supported")
        objects = []
        for obj in body["objects"]:
            oid, size = obj["oid"], obj["size"]
            stored = self.lfs.get(oid)
            if stored is not None and len(stored) == size:
                objects.append({"oid": oid, "size": size})  # no actions: already there
                continue
            href = f"{base_url}/lfs-objects/{oid}"
            objects.append({
                "oid": oid, "size": size, "authenticated": True,
                "actions": {"upload": {"href": href}, "verify": {"href": f"{href}/verify"}},
            })  # fmt: skip
        return {"transfer": "basic", "objects": objects, "hash_algo": "sha256"}

    def lfs_put(self, oid: str, data: bytes) -> dict[str, Any]:
        if hashlib.sha256(data).hexdigest() != oid:
            raise HubError(400, "", f"the bytes sent do not hash to {oid}")
        self.lfs[oid] = data  # the same oid twice in one batch: the same bytes twice
        return {}

    def lfs_verify(self, oid: str, body: dict[str, Any]) -> dict[str, Any]:
        stored = self.lfs.get(oid)
        if stored is None or len(stored) != body.get("size") or body.get("oid") != oid:
            raise HubError(404, "", f"LFS object {oid} of size {body.get('size')} not found")
        return {}

    def commit(self, base_url: str, repo_id: str, revision: str, lines: list[dict]) -> dict:
        files = dict(self._repo(repo_id, revision))
        if not lines or lines[0].get("key") != "header":
            raise HubError(400, "", "the first ndjson line must be the commit header")
        for line in lines[1:]:
            key, value = line["key"], line["value"]
            if key == "file":
                files[value["path"]] = base64.b64decode(value["content"])
            elif key == "lfsFile":
                if value["oid"] not in self.lfs:
                    raise HubError(422, "", f"LFS file {value['path']} ({value['oid']}) was "
                                   "not uploaded")  # fmt: skip
                files[value["path"]] = self.lfs[value["oid"]]
            elif key == "deletedFile":
                files.pop(value["path"], None)
            else:
                raise HubError(400, "", f"unsupported commit operation {key!r}")
        parent = self.commits[repo_id][-1] if self.commits[repo_id] else ""
        digest = hashlib.sha1(parent.encode() + json.dumps(lines[0]).encode())
        for path in sorted(files):
            digest.update(path.encode() + hashlib.sha256(files[path]).digest())
        sha = digest.hexdigest()
        for key in [k for k in self.files if k[0] == repo_id and k[1] == "main"]:
            del self.files[key]
        for path, data in files.items():
            self.files[(repo_id, sha, path)] = HostedFile(data, sha)
            self.files[(repo_id, "main", path)] = HostedFile(data, sha)
        self.repos[repo_id] = files
        self.commits[repo_id].append(sha)
        return {"commitUrl": f"{base_url}/{repo_id}/commit/{sha}", "commitOid": sha,
                "pullRequestUrl": None}  # fmt: skip


def _read_body(handler: BaseHTTPRequestHandler) -> bytes:
    """The request body, sent with a Content-Length or chunked (httpx streams files)."""
    if handler.headers.get("Transfer-Encoding", "").lower() != "chunked":
        return handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
    parts = []
    while size := int(handler.rfile.readline().split(b";")[0], 16):
        parts.append(handler.rfile.read(size))
        handler.rfile.readline()  # the CRLF after each chunk
    while handler.rfile.readline() not in (b"\r\n", b"\n", b""):
        pass  # trailers
    return b"".join(parts)


def _handler(hub: FakeHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:  # keep test output clean
            pass

        def _record(self) -> None:
            with hub.lock:
                hub.requests.append((self.command, self.path))
                hub.authorizations.append(self.headers.get("Authorization"))

        def _lookup(self) -> HostedFile | None:
            path = self.path.split("?", 1)[0].lstrip("/")
            if "/resolve/" not in path:
                return None
            repo_id, rest = path.split("/resolve/", 1)
            revision, _, filename = rest.partition("/")
            return hub.files.get((repo_id, revision, filename))

        def _error(self, status: int, code: str, message: str = "", **extra: Any) -> None:
            body = json.dumps({"error": message or code, **extra}).encode()
            self.send_response(status)
            if code:
                self.send_header("X-Error-Code", code)
            if message:  # a header is one line
                self.send_header("X-Error-Message", " ".join(message.split()))
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _json(self, answer: dict[str, Any]) -> None:
            body = json.dumps(answer).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _serve(self, with_body: bool) -> None:
            self._record()
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

        def _check_token(self) -> None:
            if hub.write_token is None:
                return
            sent = self.headers.get("Authorization")
            if sent is None:
                raise HubError(401, "", "You must be authenticated to do this (no token sent)")
            if sent != f"Bearer {hub.write_token}":
                # The Hub's words, which huggingface_hub tells apart from "repo not found".
                raise HubError(401, "", "Invalid credentials in Authorization header")

        def _upload(self) -> None:
            self._record()
            body = _read_body(self)  # read first: the connection is kept alive
            path = self.path.split("?", 1)[0]
            host, port = self.server.server_address[:2]
            base = f"http://{host}:{port}"
            try:
                with hub.lock:
                    obj = _LFS_OBJECT.match(path)
                    if self.command == "PUT" and obj and not obj["verify"]:
                        return self._json(hub.lfs_put(obj["oid"], body))
                    if self.command != "POST":
                        raise HubError(405, "", f"{self.command} {path} is not supported")
                    if path == "/api/validate-yaml":
                        return self._json(hub.validate_yaml(json.loads(body)))
                    self._check_token()
                    if obj:
                        return self._json(hub.lfs_verify(obj["oid"], json.loads(body)))
                    if path == "/api/repos/create":
                        return self._json(hub.create_repo(base, json.loads(body)))
                    if m := _PREUPLOAD.match(path):
                        return self._json(hub.preupload(m["repo"], m["revision"], json.loads(body)))
                    if m := _BATCH.match(path):
                        return self._json(hub.lfs_batch(base, m["repo"], json.loads(body)))
                    if m := _COMMIT.match(path):
                        lines = [json.loads(line) for line in body.splitlines() if line.strip()]
                        return self._json(hub.commit(base, m["repo"], m["revision"], lines))
                    raise HubError(404, "", f"POST {path} is not part of this fake Hub")
            except HubError as exc:
                return self._error(exc.status, exc.code, exc.message, **exc.extra)
            except (KeyError, TypeError, ValueError) as exc:  # bad JSON, base64 or fields
                return self._error(400, "", f"malformed request: {exc!r}")

        def do_POST(self) -> None:
            self._upload()

        def do_PUT(self) -> None:
            self._upload()

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
