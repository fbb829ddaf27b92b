"""A local stand-in for the Hugging Face Hub's upload API that records what it receives.

It answers the calls huggingface_hub makes for `create_repo` and `create_commit`: repo creation,
the preupload check (every file "regular", so contents arrive inline in the commit) and the
NDJSON commit itself, whose files it decodes and keeps.
"""

from __future__ import annotations

import base64
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class HubRecorder:
    def __init__(self) -> None:
        self.created: list[dict] = []
        self.commits: list[dict] = []
        self.headers: list[dict] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def _reply(self, code: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                recorder.headers.append(dict(self.headers))
                path = self.path.split("?")[0]
                if path == "/api/repos/create":
                    request = json.loads(body)
                    recorder.created.append(request)
                    repo = "/".join(p for p in (request.get("organization"), request["name"]) if p)
                    return self._reply(200, {"url": f"{recorder.endpoint}/{repo}"})
                if path == "/api/validate-yaml":  # the model card's metadata check
                    return self._reply(200, {"errors": [], "warnings": []})
                if "/preupload/" in path:
                    files = json.loads(body)["files"]
                    return self._reply(200, {"files": [
                        {"path": f["path"], "uploadMode": "regular", "shouldIgnore": False} for f in files]})
                if "/commit/" in path:
                    lines = [json.loads(line) for line in body.decode().splitlines() if line.strip()]
                    files = {
                        item["value"]["path"]: base64.b64decode(item["value"]["content"])
                        for item in lines if item.get("key") == "file"
                    }
                    header = next((item["value"] for item in lines if item.get("key") == "header"), {})
                    recorder.commits.append({"path": path, "header": header, "files": files})
                    repo = path.split("/api/models/")[1].split("/commit/")[0]
                    return self._reply(200, {"commitUrl": f"{recorder.endpoint}/{repo}/commit/{'1' * 40}",
                                             "commitOid": "1" * 40, "pullRequestUrl": None})
                return self._reply(404, {"error": f"not recorded: POST {path}"})

            def do_GET(self) -> None:
                self._reply(404, {"error": f"not recorded: GET {self.path}"})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
