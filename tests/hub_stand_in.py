"""A local stand-in for the Hugging Face Hub's HTTP API, enough for `create_repo` and `upload_folder`.

A real HTTP server on 127.0.0.1 that `huggingface_hub` talks to when `HF_ENDPOINT` points at it:
it answers the repository-creation, preupload and commit endpoints, asks for every file as a
regular (non-LFS) upload so that the commit carries the files' contents, and records what arrives.
"""

from __future__ import annotations

import base64
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class HubStandIn:
    """`with HubStandIn() as hub:` serves at `hub.url`; `hub.files` maps each committed path to its
    bytes, `hub.repos` lists the created repositories and `hub.requests` every (method, path)."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.repos: list[str] = []
        self.requests: list[tuple[str, str]] = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> HubStandIn:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # quiet
                pass

            def _reply(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _body(self) -> bytes:
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def do_GET(self) -> None:  # noqa: N802 - the http.server name
                hub.requests.append(("GET", self.path))
                self._reply(404, {"error": f"the stand-in does not serve GET {self.path}"})

            def do_POST(self) -> None:  # noqa: N802 - the http.server name
                hub.requests.append(("POST", self.path))
                body = self._body()
                if self.path == "/api/repos/create":
                    request = json.loads(body)
                    name = (
                        request["name"]
                        if not request.get("organization")
                        else f"{request['organization']}/{request['name']}"
                    )
                    hub.repos.append(name)
                    self._reply(200, {"url": f"{hub.url}/{name}", "name": name})
                elif self.path == "/api/validate-yaml":  # the model card's metadata, checked before the commit
                    self._reply(200, {"errors": [], "warnings": []})
                elif "/preupload/" in self.path:
                    files = json.loads(body)["files"]
                    modes = [{"path": item["path"], "uploadMode": "regular", "shouldIgnore": False} for item in files]
                    self._reply(200, {"files": modes})
                elif "/commit/" in self.path:
                    for line in body.decode().splitlines():
                        item = json.loads(line)
                        if item["key"] == "file":
                            hub.files[item["value"]["path"]] = base64.b64decode(item["value"]["content"])
                    repo = self.path.split("/api/models/")[1].split("/commit/")[0]
                    commit_url = f"{hub.url}/{repo}/commit/{'1' * 40}"
                    self._reply(200, {"commitUrl": commit_url, "commitOid": "1" * 40, "pullRequestUrl": None})
                else:
                    self._reply(404, {"error": f"the stand-in does not serve POST {self.path}"})

        return Handler
