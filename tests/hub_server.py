"""A Hugging Face Hub stand-in on 127.0.0.1: the endpoints `huggingface_hub` and `datasets` call, over repos a
test builds in memory. Point `HF_ENDPOINT` at `HubServer.url`.

Served: repo info (`/api/{models,datasets}/ID[/revision/REV]`), file listings (`tree`, `paths-info`), file
downloads (`/ID/resolve/REV/PATH`, `/datasets/ID/resolve/REV/PATH`, HEAD and ranged GET), repo creation,
model-card metadata checks (`validate-yaml`: parsed, not checked against the Hub's schema), `preupload` and
`commit` with files sent inline (base64), gated repos (403 GatedRepo for `HubServer.gated`).
Not served: LFS and Xet uploads (the preupload answer asks for every file inline, so clients never reach them),
`/api/agent-harnesses` (404), the dataset viewer (the `datasets-server.` host, which does not resolve here:
`datasets` catches that and loads without its exported infos), authentication (any token is accepted).
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

REPO_TYPES = {"models": "model", "datasets": "dataset"}
_commit_counter = itertools.count()


def git_blob_oid(content: bytes) -> str:
    """The git blob sha1 the Hub reports as a regular file's oid and ETag."""
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


@dataclass
class Revision:
    sha: str
    files: dict[str, bytes] = field(default_factory=dict)


@dataclass
class Repo:
    revisions: dict[str, Revision] = field(default_factory=dict)

    def commit(self, revision: str, files: dict[str, bytes], deleted: tuple[str, ...] = ()) -> str:
        """Add `files` to `revision` (creating it), as one new commit; returns its sha."""
        old = self.revisions.get(revision, Revision(""))
        merged = {k: v for k, v in old.files.items() if k not in deleted} | files
        sha = hashlib.sha1(f"{revision}:{next(_commit_counter)}".encode()).hexdigest()
        self.revisions[revision] = Revision(sha, merged)
        return sha


class HubServer:
    """A threaded HTTP server holding repos by (repo type, repo id)."""

    def __init__(self) -> None:
        self.repos: dict[tuple[str, str], Repo] = {}
        self.gated: set[str] = set()  # repo ids whose files and info answer 403 GatedRepo, as to a user without access
        self.requests: list[str] = []
        self.unserved: list[str] = []
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def __enter__(self) -> HubServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def add_repo(self, repo_type: str, repo_id: str, files: dict[str, bytes], revision: str = "main") -> str:
        """Create or extend a repo with `files` at `revision` (a branch or ref such as refs/convert/parquet)."""
        repo = self.repos.setdefault((repo_type, repo_id), Repo())
        if "main" not in repo.revisions and revision != "main":
            repo.commit("main", {".gitattributes": b"*.zip filter=lfs\n"})
        return repo.commit(revision, files)

    def add_folder(self, repo_type: str, repo_id: str, folder: Path, revision: str = "main") -> str:
        files = {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}
        return self.add_repo(repo_type, repo_id, files, revision)

    def files(self, repo_type: str, repo_id: str, revision: str = "main") -> dict[str, bytes]:
        return self.repos[(repo_type, repo_id)].revisions[revision].files

    def find(self, repo_type: str, repo_id: str, revision: str) -> tuple[Repo, Revision] | None:
        repo = self.repos.get((repo_type, repo_id))
        if repo is None:
            return None
        for rev in repo.revisions.values():  # a commit sha names its revision too
            if rev.sha == revision:
                return repo, rev
        rev = repo.revisions.get(revision)
        return (repo, rev) if rev else None


def _entry(path: str, content: bytes) -> dict[str, Any]:
    return {"type": "file", "path": path, "size": len(content), "oid": git_blob_oid(content)}


def _tree(files: dict[str, bytes], prefix: str, recursive: bool) -> list[dict[str, Any]]:
    """The Hub's tree listing of `prefix`: its files and folders, or everything below it when recursive."""
    base = f"{prefix.strip('/')}/" if prefix.strip("/") else ""
    entries: dict[str, dict[str, Any]] = {}
    for path, content in sorted(files.items()):
        if not path.startswith(base):
            continue
        parts = path[len(base):].split("/")
        for depth in range(1, len(parts)):
            folder = base + "/".join(parts[:depth])
            if recursive or depth == 1:
                entries.setdefault(folder, {"type": "directory", "path": folder, "oid": "0" * 40, "size": 0})
            if not recursive:
                break
        if recursive or len(parts) == 1:
            entries[path] = _entry(path, content)
    return list(entries.values())


def _handler_for(server: HubServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # quiet: tests read server.requests instead
            pass

        def do_HEAD(self) -> None:
            self._route(head=True)

        def do_GET(self) -> None:
            self._route(head=False)

        def do_POST(self) -> None:
            self._route(head=False)

        def _route(self, head: bool) -> None:
            url = urlsplit(self.path)
            parts = [unquote(p) for p in url.path.strip("/").split("/")]
            query = {k: v[-1] for k, v in parse_qs(url.query).items()}
            server.requests.append(f"{self.command} {url.path}")
            body = self._body() if self.command == "POST" else b""
            handled = self._dispatch(parts, query, body, head)
            if not handled:
                server.unserved.append(f"{self.command} {self.path}")
                self._json({"error": "not served by the test Hub"}, 404, error_code="EntryNotFound")

        def _dispatch(self, parts: list[str], query: dict[str, str], body: bytes, head: bool) -> bool:
            if parts[:3] == ["api", "repos", "create"] and self.command == "POST":
                return self._create_repo(json.loads(body or b"{}"))
            if parts[:2] == ["api", "agent-harnesses"]:  # huggingface_hub's user-agent registry: none here
                return self._json({"error": "not served"}, 404)
            if parts[:2] == ["api", "validate-yaml"] and self.command == "POST":
                return self._validate_yaml(json.loads(body)["content"])
            if parts[:2] == ["api", "whoami-v2"]:
                return self._json({"name": "someone", "type": "user", "orgs": [], "auth": {}})
            if len(parts) >= 4 and parts[0] == "api" and parts[1] in REPO_TYPES:
                return self._api(REPO_TYPES[parts[1]], parts[2:], query, body)
            if "resolve" in parts:
                at = parts.index("resolve")
                repo_type = "dataset" if parts[0] == "datasets" else "model"
                repo_id = "/".join(parts[1:at] if parts[0] == "datasets" else parts[:at])
                return self._resolve(repo_type, repo_id, parts[at + 1:], head)
            return False

        def _api(self, repo_type: str, rest: list[str], query: dict[str, str], body: bytes) -> bool:
            repo_id, verb, args = "/".join(rest[:2]), (rest[2] if len(rest) > 2 else ""), rest[3:]
            if repo_id in server.gated:
                return self._json({"error": f"Access to {repo_id} is restricted"}, 403, error_code="GatedRepo")
            if verb == "preupload" and self.command == "POST":
                files = json.loads(body)["files"]
                return self._json({"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False}
                                             for f in files]})
            if verb == "commit" and self.command == "POST":
                return self._commit(repo_type, repo_id, args[0] if args else "main", body)
            revision = args[0] if args else "main"
            if verb == "revision" and len(args) > 1:  # a ref with slashes arrives quoted, but be lenient
                revision = "/".join(args)
            found = server.find(repo_type, repo_id, revision)
            if found is None:
                return self._missing(repo_type, repo_id, revision)
            _, rev = found
            if verb in ("", "revision"):
                return self._json({
                    "id": repo_id, "sha": rev.sha, "private": False, "disabled": False, "gated": False,
                    "downloads": 0, "likes": 0, "tags": [], "lastModified": "2026-01-01T00:00:00.000Z",
                    "siblings": [{"rfilename": p, "size": len(c)} for p, c in sorted(rev.files.items())],
                })
            if verb == "tree":
                recursive = query.get("recursive", "false").lower() in ("1", "true")
                return self._json(_tree(rev.files, "/".join(args[1:]), recursive))
            if verb == "paths-info" and self.command == "POST":
                wanted = parse_qs(body.decode()).get("paths") or json.loads(body or b"{}").get("paths", [])
                by_path = {entry["path"]: entry for entry in _tree(rev.files, "", True)}
                listing = [by_path[p.strip("/")] for p in wanted if p.strip("/") in by_path]
                return self._json(listing)
            return False

        def _resolve(self, repo_type: str, repo_id: str, rest: list[str], head: bool) -> bool:
            if repo_id in server.gated:
                return self._json({"error": f"Access to {repo_id} is restricted"}, 403, error_code="GatedRepo")
            found = server.find(repo_type, repo_id, rest[0]) if rest else None
            if found is None:
                return self._missing(repo_type, repo_id, rest[0] if rest else "main")
            _, rev = found
            path = "/".join(rest[1:])
            if path not in rev.files:
                return self._json({"error": f"{path} not found"}, 404, error_code="EntryNotFound")
            content = rev.files[path]
            status, start, end = 200, 0, len(content)
            ranged = self.headers.get("Range", "")
            if ranged.startswith("bytes="):
                first, _, last = ranged[6:].partition("-")
                start, end = int(first or 0), min(int(last) + 1 if last else len(content), len(content))
                status = 206
            self.send_response(status)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(end - start))
            self.send_header("ETag", f'"{git_blob_oid(content)}"')
            self.send_header("X-Repo-Commit", rev.sha)
            self.send_header("Accept-Ranges", "bytes")
            if status == 206:
                self.send_header("Content-Range", f"bytes {start}-{end - 1}/{len(content)}")
            self.end_headers()
            if not head:
                self.wfile.write(content[start:end])
            return True

        def _create_repo(self, payload: dict[str, Any]) -> bool:
            repo_id = f"{payload.get('organization') or 'someone'}/{payload['name']}"
            key = (payload.get("type") or "model", repo_id)
            if key in server.repos:
                return self._json({"error": "You already created this repo", "url": f"{server.url}/{repo_id}"}, 409)
            server.add_repo(key[0], repo_id, {".gitattributes": b""})
            return self._json({"url": f"{server.url}/{repo_id}", "name": repo_id})

        def _commit(self, repo_type: str, repo_id: str, revision: str, body: bytes) -> bool:
            repo = server.repos.get((repo_type, repo_id))
            if repo is None:
                return self._missing(repo_type, repo_id)
            files, deleted = {}, []
            for line in body.decode().splitlines():
                item = json.loads(line) if line.strip() else {}
                value = item.get("value", {})
                if item.get("key") == "file":
                    files[value["path"]] = base64.b64decode(value["content"])
                elif item.get("key") == "deletedFile":
                    deleted.append(value["path"])
                elif item.get("key") in ("lfsFile", "deletedFolder", "copyFile"):
                    server.unserved.append(f"commit operation {item['key']}")
                    return self._json({"error": f"{item['key']} is not served by the test Hub"}, 400)
            sha = repo.commit(revision, files, tuple(deleted))
            return self._json({"success": True, "commitOid": sha, "commitUrl": f"{server.url}/{repo_id}/commit/{sha}",
                               "pullRequestUrl": None})

        def _validate_yaml(self, content: str) -> bool:
            """A README's front matter: YAML that parses to a mapping (the Hub also checks it against its schema)."""
            front = content.split("---")[1] if content.startswith("---") and content.count("---") >= 2 else "{}"
            try:
                ok = isinstance(yaml.safe_load(front), dict)
            except yaml.YAMLError:
                ok = False
            answer = {"warnings": []} if ok else {"error": "metadata is not a YAML mapping"}
            return self._json(answer, 200 if ok else 400)

        def _missing(self, repo_type: str, repo_id: str, revision: str = "main") -> bool:
            if (repo_type, repo_id) in server.repos:
                return self._json({"error": f"no revision {revision}"}, 404, error_code="RevisionNotFound")
            return self._json({"error": f"{repo_type} repository {repo_id} not found"}, 404, error_code="RepoNotFound")

        def _body(self) -> bytes:
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                return self.rfile.read(length)
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                chunks = []
                while (size := int(self.rfile.readline().strip(), 16)) > 0:
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
                self.rfile.readline()
                return b"".join(chunks)
            return b""

        def _json(self, payload: Any, status: int = 200, error_code: str | None = None) -> bool:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            if error_code:
                self.send_header("X-Error-Code", error_code)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)
            return True

    return Handler
