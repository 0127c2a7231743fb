"""Receiver pods on a real Kubernetes node, reached with kubectl on the node over SSH.

A pod is a `Host` whose commands run through `kubectl exec`, so the scenario runner treats
it like a namespace or a VM. Pods are created from the rendered manifests (annotation
`NAD@ifname` for attached pods, none for the negative control), waited for until Ready,
and deleted by their labels, also after a failure.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lab.command import Result
from lab.errors import BackendError
from lab.host import Host, Process
from lab.manifests import dump_all, pod_metadata
from lab.model import Lab

KUBECONFIG = "/etc/kubernetes/admin.conf"
READY_TIMEOUT_S = 180
DELETE_TIMEOUT_S = 120


def kubectl(*args: str) -> list[str]:
    return ["kubectl", f"--kubeconfig={KUBECONFIG}", *args]


class PodHost:
    """A pod, through `kubectl exec` on the node."""

    def __init__(self, name: str, pod: str, node: Host) -> None:
        self.name = name
        self.pod = pod
        self.node = node

    def _exec(self, argv: Sequence[str], stdin: bool = False) -> list[str]:
        return kubectl("exec", *(["-i"] if stdin else []), self.pod, "--", *argv)

    def run(self, argv: Sequence[str], *, timeout: float, check: bool = True,
            input: str | None = None, what: str = "") -> Result:
        return self.node.run(self._exec(argv, input is not None), timeout=timeout, check=check,
                             input=input, what=what or f"in pod {self.pod}")

    def start(self, argv: Sequence[str], *, timeout: float) -> Process:
        # Bounded on the node by timeout(1) (the SSH host adds it) and in the pod by
        # iperf's own -t and the pod's activeDeadlineSeconds.
        return self.node.start(self._exec(argv), timeout=timeout)


def sleeper_pod(lab: Lab, pod: str, run_label: str, attachment: bool, lifetime_s: int
                ) -> dict[str, Any]:
    """A pod that only waits; the runner execs iperf in it (so it sees every exit status)."""
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": pod_metadata(lab, pod, attachment, {"mcast-lab/run": run_label}),
        "spec": {"restartPolicy": "Never", "activeDeadlineSeconds": lifetime_s,
                 "terminationGracePeriodSeconds": 1,
                 "containers": [{"name": "receiver", "image": lab.kubernetes.iperf_image,
                                 "command": ["sleep", str(lifetime_s)]}]},
    }


def create(node: Host, lab: Lab, manifests: list[dict[str, Any]], run_label: str) -> None:
    node.run(kubectl("apply", "-f", "-"), input=dump_all(manifests), timeout=60,
             what="create receiver pods")
    selector = f"mcast-lab/run={run_label}"
    ready = node.run(kubectl("wait", "--for=condition=Ready", "pod", "-l", selector,
                             f"--timeout={READY_TIMEOUT_S}s"),
                     timeout=READY_TIMEOUT_S + 30, check=False)
    if not ready.ok:
        described = node.run(kubectl("describe", "pod", "-l", selector), timeout=60,
                             check=False).stdout
        events = node.run(kubectl("get", "events", "--sort-by=.lastTimestamp"), timeout=60,
                          check=False).stdout
        raise BackendError(f"receiver pods ({selector}) not Ready within {READY_TIMEOUT_S} s:"
                           f"\n{ready.stderr.strip()}\n{described[-3000:]}\n"
                           f"{events.strip()[-1500:]}")


def delete(node: Host, run_label: str) -> None:
    node.run(kubectl("delete", "pod", "-l", f"mcast-lab/run={run_label}", "--wait=true",
                     f"--timeout={DELETE_TIMEOUT_S}s", "--ignore-not-found"),
             timeout=DELETE_TIMEOUT_S + 30, what="delete receiver pods")
