"""Pods on the user's cluster as the runner's hosts.

- A receiver pod runs its iperf receiver as the container's command from the start;
  `start()` hands the runner that process (read from the pod's log), and `run()` is a
  short probe by exec (`cat /proc/net/igmp`).
- A lab host (the source, a node) is a place where commands run as pods of their own:
  `start()` makes a pod for the command; `run()` execs a short probe into that pod while
  it runs, and otherwise runs the command as a pod of its own and waits for it to end
  (the sender's `iperf -c` is such a pod: it ends by itself, nothing is left running).
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from lab import names
from lab.command import Result
from lab.errors import BackendError, CommandFailed
from lab.kube import cluster as objects
from lab.kube.kubectl import Kubectl
from lab.kube.watch import wait_pods
from lab.model.lab import Lab

KUBECTL_TIMEOUT_S = 60.0
DELETE_TIMEOUT_S = 120
# How often a running pod's state and log are read again (each read is a kubectl call).
REFRESH_S = 0.3


@dataclass
class Cluster:
    """What every pod of a lab shares: kubectl in the lab's namespace, the lab, the owner
    label, the image, and how long a pod may take to start."""

    kubectl: Kubectl
    lab: Lab
    owner: str
    image: str
    start_timeout_s: float = 180.0

    def create(self, docs: list[dict[str, Any]], what: str) -> None:
        self.kubectl.create(docs, what=what)

    def pod(self, name: str) -> dict[str, Any] | None:
        got = self.kubectl.run("get", "pod", name, "-o", "json", timeout=KUBECTL_TIMEOUT_S,
                               check=False, what=f"read pod {name}")
        if not got.ok:
            if "NotFound" in got.stderr or "not found" in got.stderr:
                return None
            raise CommandFailed(got, f"read pod {name}")
        return json.loads(got.stdout)  # type: ignore[no-any-return]

    def log(self, name: str) -> str:
        return self.kubectl.run("logs", name, timeout=KUBECTL_TIMEOUT_S, check=False,
                                what=f"read pod {name}'s log").stdout

    def delete_pod(self, name: str) -> None:
        self.kubectl.run("delete", "pod", name, "--wait=true", f"--timeout={DELETE_TIMEOUT_S}s",
                         "--ignore-not-found", timeout=DELETE_TIMEOUT_S + 30,
                         what=f"delete pod {name}")

    def delete(self, selector: str, what: str) -> None:
        self.kubectl.run("delete", "pod", "-l", selector, "--wait=true",
                         f"--timeout={DELETE_TIMEOUT_S}s", "--ignore-not-found",
                         timeout=DELETE_TIMEOUT_S + 30, what=what)


class PodProcess:
    """The command a pod's container runs, as the runner's background process: running
    while the container runs, its output the pod's log (stdout and stderr together).
    A pod it `owns` is deleted when it stops; a receiver pod is deleted with its case."""

    def __init__(self, cluster: Cluster, pod: str, argv: Sequence[str], timeout: float,
                 owns: bool) -> None:
        self.cluster = cluster
        self.pod = pod
        self.argv = tuple(argv)
        self.timeout = timeout
        self.owns = owns
        self._started = time.monotonic()
        self._result: Result | None = None
        self._seen: dict[str, Any] | None = None
        self._seen_at = 0.0
        self._log = ""
        self._log_at = 0.0

    def _state(self) -> dict[str, Any] | None:
        if time.monotonic() - self._seen_at >= REFRESH_S:
            self._seen = self.cluster.pod(self.pod)
            self._seen_at = time.monotonic()
        return self._seen

    def running(self) -> bool:
        if self._result is not None:
            return False
        pod = self._state()
        return pod is not None and objects.container_exit(pod) is None and \
            pod.get("status", {}).get("phase") in ("Pending", "Running")

    def output(self) -> str:
        if self._result is not None:
            return self._result.stdout
        if time.monotonic() - self._log_at >= REFRESH_S:
            self._log = self.cluster.log(self.pod)
            self._log_at = time.monotonic()
        return self._log

    def error_output(self) -> str:
        # One log holds both streams: iperf's complaints are in it.
        return "" if self._result is not None else self.output()

    def terminate(self) -> None:
        return None  # no signal reaches a container without exec: stop() ends it

    def stop(self) -> Result:
        if self._result is not None:
            return self._result
        pod = self.cluster.pod(self.pod)
        log = self.cluster.log(self.pod) if pod is not None else self._log
        ended = objects.container_exit(pod) if pod is not None else None
        if self.owns and pod is not None:
            self.cluster.delete_pod(self.pod)
        # Still running when stopped: as a process ended by SIGTERM would say.
        status = ended if ended is not None else -15
        self._result = Result(self.argv, status, log, "", time.monotonic() - self._started,
                              self.timeout, where=self.pod)
        return self._result


class ReceiverPod:
    """A receiver pod: its receiver runs from the start; probes by exec."""

    def __init__(self, name: str, pod: str, cluster: Cluster, command: Sequence[str]) -> None:
        self.name = name
        self.pod = pod
        self.cluster = cluster
        self.command = tuple(command)

    def run(self, argv: Sequence[str], *, timeout: float, check: bool = True,
            input: str | None = None, what: str = "") -> Result:
        return self.cluster.kubectl.exec(self.pod, argv, timeout=timeout, check=check,
                                         input=input, what=what or f"in pod {self.pod}")

    def start(self, argv: Sequence[str], *, timeout: float) -> PodProcess:
        if tuple(argv) != self.command:
            raise BackendError(f"pod {self.pod} runs {' '.join(self.command)}; on a cluster "
                               "a receiver pod runs its receiver and nothing else")
        return PodProcess(self.cluster, self.pod, argv, timeout, owns=False)


class CommandHost:
    """A lab host on the cluster: each command a pod of its own on `node` (the cluster's
    node name), attached at `address`, or on the node's network (`host_network`)."""

    def __init__(self, name: str, cluster: Cluster, node: str, *, address: str | None = None,
                 host_network: bool = False, refused: str = "") -> None:
        self.name = name
        self.cluster = cluster
        self.node = node
        self.address = address
        self.host_network = host_network
        self.refused = refused  # why this host takes no command here ("" it does)
        self._live: list[PodProcess] = []

    def _make(self, argv: Sequence[str], timeout: float, role: str) -> str:
        if self.refused:
            raise BackendError(self.refused)
        lab = self.cluster.lab
        name = names.kube_command_pod(lab.name, self.name, secrets.token_hex(3))
        self.cluster.create([objects.command_pod(
            lab, self.cluster.owner, name, node=self.node, image=self.cluster.image,
            command=list(argv), lifetime_s=int(timeout) + 1, role=role, run=name[:63],
            address=self.address, host_network=self.host_network)],
            what=f"start {argv[0]} on {self.name} (pod {name})")
        return name

    def start(self, argv: Sequence[str], *, timeout: float) -> PodProcess:
        name = self._make(argv, timeout, "command")
        wait_pods(self.cluster.kubectl, [name], f"{objects.LABEL_OWNER}={self.cluster.owner}",
                  until="ready", deadline_s=self.cluster.start_timeout_s)
        process = PodProcess(self.cluster, name, argv, timeout, owns=True)
        self._live = [p for p in self._live if p.running()] + [process]
        return process

    def run(self, argv: Sequence[str], *, timeout: float, check: bool = True,
            input: str | None = None, what: str = "") -> Result:
        live = [p for p in self._live if p.running()]
        if live and input is None:
            # A short probe into the pod already running here (same network namespace).
            return self.cluster.kubectl.exec(live[-1].pod, argv, timeout=timeout,
                                             check=check, what=what or f"on {self.name}")
        started = time.monotonic()
        name = self._make(argv, timeout, "command")
        process = PodProcess(self.cluster, name, argv, timeout, owns=True)
        try:
            wait_pods(self.cluster.kubectl, [name],
                      f"{objects.LABEL_OWNER}={self.cluster.owner}", until="done",
                      deadline_s=self.cluster.start_timeout_s + timeout)
        finally:
            result = process.stop()
        result = Result(result.command, result.exit_status, result.stdout, "",
                        time.monotonic() - started, timeout, where=f"{self.name} (pod {name})")
        if check and not result.ok:
            raise CommandFailed(result, what or f"{argv[0]} on {self.name}")
        return result
