"""`lab logs`: one archive with what it takes to diagnose a lab without its machine.

From this machine: the lab file, the state record, the Vagrantfile's input and the
provisioning logs. From each host that exists (also in a half-made lab): versions
(kernel, OS, iperf, and on a Kubernetes node containerd, kubelet, kubeadm, the CNI
plugins, the Multus image), links, addresses, multicast memberships, sysctls, the step
markers; on the node, kubectl's view of nodes and kube-system pods, events, the NADs, the
Multus log and the kubelet and containerd journals.

Never in it: keys and tokens. Nothing is read from where they live (kubeconfigs, PKI,
SSH keys), and every file is scrubbed of lines that carry key material, as a second line
of defence. Each file starts with the command that made it and its exit status.
"""

from __future__ import annotations

import datetime as dt
import io
import re
import tarfile
from collections.abc import Sequence
from pathlib import Path

from lab.errors import Interrupted
from lab.host import Host
from lab.kube.kubectl import NODE_ADMIN_KUBECONFIG
from lab.model.lab import Lab
from lab.names import VM_STATE_DIR

COMMAND_TIMEOUT_S = 60.0
# Key material: PEM blocks, kubeconfig *-data fields, bearer tokens, join tokens.
_SECRET = re.compile(r"PRIVATE KEY|BEGIN CERTIFICATE|-data:|\btoken\b\s*[:=]|"
                     r"[a-z0-9]{6}\.[a-z0-9]{16}", re.IGNORECASE)
REDACTED = "[line removed by lab logs: it may carry key material]"

HOST_COMMANDS: tuple[tuple[str, Sequence[str]], ...] = (
    ("uname", ["uname", "-a"]),
    ("os-release", ["cat", "/etc/os-release"]),
    ("iperf-version", ["sh", "-c", "iperf --version 2>&1"]),
    ("ip-link", ["ip", "-d", "link"]),
    ("ip-addr", ["ip", "-d", "addr"]),
    ("ip-maddr", ["ip", "maddr"]),
    ("igmp", ["cat", "/proc/net/igmp"]),
    ("sysctl", ["sysctl", "net.ipv4.ip_forward", "net.ipv4.igmp_max_memberships"]),
    ("steps-done", ["sh", "-c", f"ls -l {VM_STATE_DIR}/steps; cat {VM_STATE_DIR}/env"]),
)


def _kubectl(*args: str) -> list[str]:
    return ["kubectl", f"--kubeconfig={NODE_ADMIN_KUBECONFIG}", *args]


NODE_COMMANDS: tuple[tuple[str, Sequence[str]], ...] = (
    ("containerd-version", ["containerd", "--version"]),
    ("kubelet-version", ["kubelet", "--version"]),
    ("kubeadm-version", ["kubeadm", "version", "-o", "short"]),
    ("cni-plugins", ["sh", "-c", "ls -l /opt/cni/bin; /opt/cni/bin/macvlan 2>&1 || true"]),
    ("cni-config", ["sh", "-c", "ls -l /etc/cni/net.d; cat /etc/cni/net.d/00-multus.conf"]),
    ("kubelet-journal", ["journalctl", "-u", "kubelet", "-n", "300", "--no-pager"]),
    ("containerd-journal", ["journalctl", "-u", "containerd", "-n", "150", "--no-pager"]),
    ("nodes", _kubectl("get", "nodes", "-o", "wide")),
    ("nodes-describe", _kubectl("describe", "nodes")),
    ("pods", _kubectl("get", "pods", "-A", "-o", "wide")),
    ("kube-system-describe", _kubectl("-n", "kube-system", "describe", "pods")),
    ("multus-image", _kubectl("-n", "kube-system", "get", "ds", "kube-multus-ds", "-o",
                              "jsonpath={.spec.template.spec.containers[*].image}")),
    ("multus-log", _kubectl("-n", "kube-system", "logs", "ds/kube-multus-ds", "--tail=300")),
    ("events", _kubectl("get", "events", "-A", "--sort-by=.lastTimestamp")),
    ("nads", _kubectl("get", "network-attachment-definitions.k8s.cni.cncf.io", "-A",
                      "-o", "yaml")),
)


def scrub(text: str) -> str:
    return "\n".join(REDACTED if _SECRET.search(line) else line
                     for line in text.splitlines()) + ("\n" if text.endswith("\n") else "")


def _run(host: Host, argv: Sequence[str]) -> str:
    try:
        r = host.run(list(argv), timeout=COMMAND_TIMEOUT_S, check=False)
        status = "timed out" if r.timed_out else f"exit status {r.exit_status}"
        return f"$ {r.shown}\n# {status}\n{r.stdout}" + (f"# stderr\n{r.stderr}"
                                                          if r.stderr.strip() else "")
    except Interrupted:
        raise  # Ctrl-C or SIGTERM stops `lab logs`, not only this command
    except Exception as exc:  # a host that stops answering must not stop the archive
        return f"$ {' '.join(argv)}\n# not run: {exc}\n"


def collect(lab: Lab, hosts: dict[str, Host], local_files: dict[str, Path],
            out_dir: Path, no_kubernetes: str | None) -> Path:
    """Write `lab-logs-<lab>-<time>.tar.gz` into `out_dir`; returns its path.
    `no_kubernetes`: why the node has no Kubernetes to ask, or None when it has."""
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M%S")
    root = f"lab-logs-{lab.name}-{stamp}"
    files: dict[str, str] = {}
    for name, path in local_files.items():
        if path.is_file():
            files[name] = path.read_text(errors="replace")
        elif path.is_dir():
            for item in sorted(p for p in path.rglob("*") if p.is_file()):
                files[f"{name}/{item.relative_to(path)}"] = item.read_text(errors="replace")
    for spec in lab.hosts:
        host = hosts.get(spec.name)
        if host is None:
            files[f"hosts/{spec.name}/NOT-REACHED.txt"] = (
                f"{spec.name} does not exist (yet): nothing was read from it\n")
            continue
        for name, argv in HOST_COMMANDS:
            files[f"hosts/{spec.name}/{name}.txt"] = _run(host, argv)
        if spec.role == "node":
            for name, argv in NODE_COMMANDS:
                files[f"hosts/{spec.name}/kubernetes/{name}.txt"] = (
                    _run(host, argv) if no_kubernetes is None else f"{no_kubernetes}\n")
    files["MANIFEST.txt"] = "".join(f"{name}\n" for name in sorted(files))
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{root}.tar.gz"
    tmp = out_dir / f".{root}.tar.gz.tmp"
    with tarfile.open(tmp, "w:gz") as tar:
        for name, text in sorted(files.items()):
            data = scrub(text).encode()
            info = tarfile.TarInfo(f"{root}/{name}")
            info.size, info.mode = len(data), 0o644
            info.mtime = int(dt.datetime.now(dt.UTC).timestamp())
            tar.addfile(info, io.BytesIO(data))
    tmp.replace(target)
    return target
