"""Receiver pods on a Kubernetes node: applied from `lab.kube.manifests`, waited for until
Ready, reached with `kubectl exec`, deleted by their run label (also after a failure).

A pod is a `Host` whose commands run through `kubectl exec`, so the scenario runner treats
it like a namespace or a VM.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lab import names
from lab.command import Result
from lab.errors import BackendError
from lab.host import Process
from lab.kube.kubectl import Kubectl

READY_TIMEOUT_S = 180
DELETE_TIMEOUT_S = 120


class PodHost:
    """A pod, through `kubectl exec`."""

    def __init__(self, name: str, pod: str, kubectl: Kubectl) -> None:
        self.name = name
        self.pod = pod
        self.kubectl = kubectl

    def run(self, argv: Sequence[str], *, timeout: float, check: bool = True,
            input: str | None = None, what: str = "") -> Result:
        return self.kubectl.exec(self.pod, argv, timeout=timeout, check=check, input=input,
                                 what=what)

    def start(self, argv: Sequence[str], *, timeout: float) -> Process:
        # Bounded where kubectl runs by timeout(1) (every host adds it) and in the pod by
        # iperf's own -t and the pod's activeDeadlineSeconds.
        return self.kubectl.exec_start(self.pod, argv, timeout=timeout)


def _selector(run_label: str) -> str:
    return f"{names.LABEL_RUN}={run_label}"


def create(kubectl: Kubectl, manifests: list[dict[str, Any]], run_label: str) -> None:
    kubectl.apply(manifests, what="create receiver pods")
    selector = _selector(run_label)
    ready = kubectl.run("wait", "--for=condition=Ready", "pod", "-l", selector,
                        f"--timeout={READY_TIMEOUT_S}s", timeout=READY_TIMEOUT_S + 30,
                        check=False)
    if not ready.ok:
        described = kubectl.run("describe", "pod", "-l", selector, timeout=60,
                                check=False).stdout
        events = kubectl.run("get", "events", "--sort-by=.lastTimestamp", timeout=60,
                             check=False).stdout
        raise BackendError(f"receiver pods ({selector}) not Ready within {READY_TIMEOUT_S} s:"
                           f"\n{ready.stderr.strip()}\n{described[-3000:]}\n"
                           f"{events.strip()[-1500:]}")


def delete(kubectl: Kubectl, run_label: str) -> None:
    kubectl.run("delete", "pod", "-l", _selector(run_label), "--wait=true",
                f"--timeout={DELETE_TIMEOUT_S}s", "--ignore-not-found",
                timeout=DELETE_TIMEOUT_S + 30, what="delete receiver pods")
