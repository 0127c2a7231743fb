"""The kubectl client runs on any Host with its kubeconfig and namespace: here on this
machine (`LocalHost`), where `kubectl` is a FAKE, named as such: a shell script that
prints the arguments and stdin it got (no Kubernetes API can run here). The node-over-SSH
side is the same class on an SshHost (tests/integration/test_kube_receivers_netns.py)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from lab.kube.kubectl import Kubectl
from lab.local import LocalHost

FAKE_KUBECTL = """#!/bin/sh
# FAKE kubectl: says what it was asked, and fails like kubectl on "get nothing".
for a in "$@"; do printf '%s\\n' "$a"; done
if [ "$2" = "--namespace=lab" ] && [ "$3" = "apply" ]; then sed 's/^/stdin: /'; fi
if [ "$3" = "get" ]; then
  echo 'error: the server does not have a resource type "nothing"' >&2; exit 1
fi
exit 0
"""


@pytest.fixture
def kubectl(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Kubectl:
    fake = tmp_path / "bin" / "kubectl"
    fake.parent.mkdir()
    fake.write_text(FAKE_KUBECTL)
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}{os.pathsep}{os.environ['PATH']}")
    return Kubectl(LocalHost(), kubeconfig=str(tmp_path / "kubeconfig"), namespace="lab")


def test_every_call_carries_the_kubeconfig_and_namespace(kubectl: Kubectl,
                                                         tmp_path: Path) -> None:
    out = kubectl.run("version", timeout=10).stdout.split()
    assert out == [f"--kubeconfig={tmp_path / 'kubeconfig'}", "--namespace=lab", "version"]


def test_apply_sends_the_documents_on_stdin(kubectl: Kubectl) -> None:
    out = kubectl.apply([{"kind": "Pod", "metadata": {"name": "p"}}], what="t").stdout
    assert "apply\n-f\n-\n" in out and "stdin: kind: Pod" in out


def test_exec_in_a_pod_and_kubectls_own_failure_kept(kubectl: Kubectl) -> None:
    out = kubectl.exec("p", ["cat", "/proc/net/igmp"], timeout=10).stdout.split()
    assert out[2:] == ["exec", "p", "--", "cat", "/proc/net/igmp"]
    failed = kubectl.run("get", "nothing", timeout=10, check=False)
    assert failed.exit_status == 1 and "does not have a resource type" in failed.stderr


def test_a_background_exec_is_a_bounded_process(kubectl: Kubectl) -> None:
    proc = kubectl.exec_start("p", ["iperf", "-s"], timeout=30)
    deadline = time.monotonic() + 20
    while proc.running() and time.monotonic() < deadline:  # the fake ends by itself
        time.sleep(0.01)
    result = proc.stop()
    assert result.exit_status == 0
    assert result.command[:3] == ("timeout", "--kill-after=2", "30")
    assert result.stdout.split()[2:] == ["exec", "p", "--", "iperf", "-s"]
