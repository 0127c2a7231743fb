"""The checks a lab runs on itself at the end of `lab up`: every host has its lab address
and iperf2, and, with Kubernetes, the node is Ready, Multus has written its CNI config, the
NAD exists, and a probe pod gets the attachment (its interface, an address in the range,
a macvlan on the node's lab NIC). The probe is deleted afterwards, also on failure.

Each finding is a `Check` whose `fix` says what to look at. The Kubernetes checks stop at
the first failure: the ones after it depend on it.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from lab import names
from lab.check import Check
from lab.errors import Interrupted, LabError
from lab.host import Host
from lab.kube import pods as kubepods
from lab.kube.kubectl import Kubectl
from lab.kube.manifests import PROBE, probe_pod
from lab.model.lab import HostSpec, Lab

MULTUS_CONF = "/etc/cni/net.d/00-multus.conf"
NETWORK_STATUS = "k8s.v1.cni.cncf.io/network-status"
CNI_BIN = "/opt/cni/bin"


def host_checks(lab: Lab, hosts: dict[str, Host], nics: dict[str, str]) -> list[Check]:
    """Each host's lab NIC and iperf, the hosts asked side by side (a VM over SSH answers
    in a few hundred milliseconds; one after the other they add up), in the lab's order."""
    with ThreadPoolExecutor(max_workers=max(1, len(lab.hosts)),
                            thread_name_prefix="selfcheck") as pool:
        per_host = list(pool.map(lambda spec: _host_checks(lab, spec, hosts[spec.name],
                                                           nics[spec.name]), lab.hosts))
    return [check for checks in per_host for check in checks]


def _host_checks(lab: Lab, spec: HostSpec, host: Host, nic: str) -> list[Check]:
    want = f"{spec.address}/{lab.subnet.prefixlen}"
    addr = host.run(["ip", "-o", "-4", "addr", "show", "dev", nic], timeout=30, check=False)
    found = [Check(f"{spec.name}-lab-nic", want in addr.stdout.split(),
                   f"{spec.name}: {nic} has {want}" if want in addr.stdout.split()
                   else f"{spec.name}: {nic} does not hold {want}: "
                   f"{addr.stdout.strip() or addr.stderr.strip()}",
                   f"`lab ssh {spec.name} -- ip -4 addr`; the lab-nic step's log")]
    version = host.run(["iperf", "--version"], timeout=30, check=False)
    text = (version.stdout + version.stderr).strip().splitlines()
    ok = bool(text) and text[0].startswith("iperf version 2")
    found.append(Check(f"{spec.name}-iperf", ok, f"{spec.name}: "
                       + (text[0] if text else "no iperf"), "the iperf step's log"))
    return found


def kube_checks(lab: Lab, node: Host, nic: str) -> list[Check]:
    """Stops at the first check that fails; always removes the probe pod it made."""
    kubectl = Kubectl(node)
    found: list[Check] = []
    steps: list[Callable[[], Check]] = [
        lambda: _node_ready(lab, kubectl),
        lambda: _multus_conf(node),
        lambda: _nad(lab, kubectl),
        lambda: _probe(lab, kubectl, node, nic),
    ]
    for step in steps:
        check = step()
        found.append(check)
        if not check.ok:
            break
    return found


def _node_ready(lab: Lab, kubectl: Kubectl) -> Check:
    """Every node of the lab is a Ready node of the cluster (the workers joined it)."""
    said = []
    for spec in lab.nodes:
        out = kubectl.run("get", "node", spec.name, "-o",
                          'jsonpath={.status.conditions[?(@.type=="Ready")].status}',
                          timeout=60, check=False)
        said.append(f"node {spec.name} Ready: {out.stdout.strip() or out.stderr.strip()}")
        if out.stdout.strip() != "True":
            step = "flannel" if spec.name == lab.node.name else "kubeadm-join"
            return Check("node-ready", False, "; ".join(said),
                         f"`lab ssh {lab.node.name} -- kubectl --kubeconfig "
                         f"/etc/kubernetes/admin.conf describe node {spec.name}`; the "
                         f"{step} step's log")
    return Check("node-ready", True, "; ".join(said), "")


def _multus_conf(node: Host) -> Check:
    out = node.run(["test", "-s", MULTUS_CONF], timeout=30, check=False)
    return Check("multus-config", out.ok, f"{MULTUS_CONF} " +
                 ("written" if out.ok else "missing: pods would get no attachment"),
                 "the multus step's log; kubectl -n kube-system logs ds/kube-multus-ds")


def _nad(lab: Lab, kubectl: Kubectl) -> Check:
    name = lab.attachment.name
    out = kubectl.run("get", "network-attachment-definitions.k8s.cni.cncf.io", name,
                      "-o", "name", timeout=60, check=False)
    return Check("nad", out.ok, f"NetworkAttachmentDefinition {name} " +
                 ("present" if out.ok else f"missing: {out.stderr.strip()}"),
                 "`lab manifests` shows the NAD `lab up` applies")


def _probe(lab: Lab, kubectl: Kubectl, node: Host, nic: str) -> Check:
    label = names.kube_run_label(lab.name, "self-check")
    pod = names.kube_pod(lab.name, PROBE)
    look = (f"kubectl describe pod {pod}; the Multus log (`lab logs` gathers both)")
    try:
        kubepods.delete(kubectl, label)  # one a killed `lab up` left
        kubepods.create(kubectl, [probe_pod(lab)], label)
        status = kubectl.run("get", "pod", pod, "-o",
                             "jsonpath={.metadata.annotations.k8s\\.v1\\.cni\\.cncf\\.io/"
                             "network-status}", timeout=60).stdout
        return _attachment_check(lab, status, kubectl, node, pod, nic, look)
    except Interrupted:
        raise  # the user stopped `lab up`: not a failed check
    except LabError as exc:
        return Check("probe-pod", False, f"probe pod {pod}: {str(exc).splitlines()[0]}",
                     look)
    finally:
        with contextlib.suppress(LabError):
            kubepods.delete(kubectl, label)


def _attachment_check(lab: Lab, status_json: str, kubectl: Kubectl, node: Host, pod: str,
                      nic: str, look: str) -> Check:
    a = lab.attachment
    try:
        networks = json.loads(status_json or "[]")
    except ValueError:
        networks = []
    attached = next((n for n in networks if n.get("interface") == a.ifname), None)
    if attached is None:
        return Check("probe-attachment", False, f"probe pod {pod} has no {a.ifname} from "
                     f"{a.name} (Multus network-status: {status_json or 'none'})", look)
    ips = [ipaddress.IPv4Address(ip) for ip in attached.get("ips", []) if "." in ip]
    in_range = [ip for ip in ips if a.range_start <= ip <= a.range_end]
    if not in_range:
        return Check("probe-attachment", False, f"probe pod {pod}'s {a.ifname} has "
                     f"{[str(ip) for ip in ips]}, none in {a.range_start}-{a.range_end}",
                     look)
    # The pod's macvlan hangs off the node's lab NIC: its iflink is that NIC's ifindex.
    iflink = kubectl.exec(pod, ["cat", f"/sys/class/net/{a.ifname}/iflink"], timeout=60,
                          check=False).stdout.strip()
    ifindex = node.run(["cat", f"/sys/class/net/{nic}/ifindex"], timeout=30,
                       check=False).stdout.strip()
    # Run bare, a CNI plugin names itself and its release ("CNI macvlan plugin v1.6.2").
    plugin = node.run(["env", "-u", "CNI_COMMAND", f"{CNI_BIN}/macvlan"], timeout=30,
                      check=False)
    version = (plugin.stdout + plugin.stderr).strip().splitlines()
    on_nic = bool(iflink) and iflink == ifindex
    return Check("probe-attachment", on_nic,
                 f"probe pod {pod} got {a.ifname} {in_range[0]} "
                 + (f"on {nic}" if on_nic else f"but its link {iflink or '?'} is not "
                    f"{nic} ({ifindex or '?'})")
                 + (f"; macvlan plugin: {version[0][:120]}" if version else ""), look)


def selfcheck(lab: Lab, hosts: dict[str, Host], nics: dict[str, str]) -> list[Check]:
    found = host_checks(lab, hosts, nics)
    if not lab.kubernetes.provision:
        found.append(Check("kubernetes", True, "not provisioned (kubernetes.provision: "
                           "false): pod scenarios need it", blocking=False))
    elif all(c.ok for c in found):
        found.extend(kube_checks(lab, hosts[lab.node.name], nics[lab.node.name]))
    return found
