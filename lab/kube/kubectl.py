"""kubectl with a kubeconfig and a namespace, run on a `Host`: the k8s node over SSH (the
vagrant backend) or this machine (`lab.local.LocalHost`, for a cluster of one's own).
Every call has a timeout and keeps kubectl's exit status and message."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import yaml

from lab.command import Result
from lab.host import Host, Process

# Where kubeadm writes the cluster admin's kubeconfig on the control-plane node.
NODE_ADMIN_KUBECONFIG = "/etc/kubernetes/admin.conf"
APPLY_TIMEOUT_S = 60.0


class Kubectl:
    """kubectl with `kubeconfig`; `context` and `binary` for a cluster of the user's (the
    context always named, never the kubeconfig's current one)."""

    def __init__(self, host: Host, kubeconfig: str = NODE_ADMIN_KUBECONFIG,
                 namespace: str | None = None, context: str | None = None,
                 binary: str = "kubectl") -> None:
        self.host = host
        self.kubeconfig = kubeconfig
        self.namespace = namespace
        self.context = context
        self.binary = binary

    def argv(self, *args: str) -> list[str]:
        ns = [f"--namespace={self.namespace}"] if self.namespace else []
        context = [f"--context={self.context}"] if self.context else []
        return [self.binary, f"--kubeconfig={self.kubeconfig}", *context, *ns, *args]

    def in_namespace(self, namespace: str | None) -> Kubectl:
        return Kubectl(self.host, self.kubeconfig, namespace, self.context, self.binary)

    def run(self, *args: str, timeout: float, check: bool = True, input: str | None = None,
            what: str = "") -> Result:
        return self.host.run(self.argv(*args), timeout=timeout, check=check, input=input,
                             what=what or f"kubectl {args[0]}")

    def apply(self, docs: list[dict[str, Any]], *, what: str,
              timeout: float = APPLY_TIMEOUT_S) -> Result:
        return self.run("apply", "-f", "-", input=dump_all(docs), timeout=timeout, what=what)

    def create(self, docs: list[dict[str, Any]], *, what: str,
               timeout: float = APPLY_TIMEOUT_S) -> Result:
        """Objects made from manifests: sent as JSON (kubectl's typed clients would send
        protobuf), none replaced (a name taken is an error, not someone else's object
        overwritten)."""
        return self.run("create", "--validate=false", "-f", "-", input=dump_all(docs),
                        timeout=timeout, what=what)

    def exec_argv(self, pod: str, argv: Sequence[str], stdin: bool = False) -> list[str]:
        return self.argv("exec", *(["-i"] if stdin else []), pod, "--", *argv)

    def exec(self, pod: str, argv: Sequence[str], *, timeout: float, check: bool = True,
             input: str | None = None, what: str = "") -> Result:
        return self.host.run(self.exec_argv(pod, argv, input is not None), timeout=timeout,
                             check=check, input=input, what=what or f"in pod {pod}")

    def exec_start(self, pod: str, argv: Sequence[str], *, timeout: float) -> Process:
        return self.host.start(self.exec_argv(pod, argv), timeout=timeout)


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (the NAD's JSON config) as literal blocks, as people write them."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def dump_all(docs: list[dict[str, Any]]) -> str:
    return yaml.dump_all(docs, Dumper=_Dumper, sort_keys=False)
