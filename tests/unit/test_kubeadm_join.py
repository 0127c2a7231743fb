"""Joining workers: the engine's roles for each host, the join token parsed from what
kubeadm prints, and provision/kubeadm-join.sh by real bash.

FAKE, named as such: `kubeadm`, `kubectl` and `systemctl` are scripts on PATH (Kubernetes
cannot run here). They record how they were called and answer as the real ones do in each
case: `kubeadm join` writes kubelet.conf, the node is Ready (`kubectl get node -o jsonpath`
prints True) once that file exists, unless a case says otherwise.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from lab.backends.vagrant.backend import VagrantBackend, kubeadm_join_args
from lab.errors import BackendError
from lab.model.labfile import load_lab
from lab.remote.provision import load_steps
from lab.state import State
from lab.ui import Reporter
from tests.support import REPO

pytestmark = pytest.mark.portable

HASH = "sha256:" + "0123456789abcdef" * 4
TOKEN = "abcdef.0123456789abcdef"


@pytest.mark.parametrize("printed", [
    f"kubeadm join 192.168.56.11:6443 --token {TOKEN} --discovery-token-ca-cert-hash {HASH} \n",
    # Before Kubernetes 1.21 the line had runs of spaces where `\` line breaks were cut.
    f"kubeadm join 192.168.56.11:6443 --token {TOKEN}     --discovery-token-ca-cert-hash "
    f"{HASH}\n",
])
def test_the_join_token_and_ca_hash_are_read_from_what_kubeadm_prints(printed: str) -> None:
    assert kubeadm_join_args(printed) == (TOKEN, HASH)


def test_a_join_line_without_a_token_is_an_error_that_quotes_it() -> None:
    with pytest.raises(BackendError, match="printed no token and CA hash.*unable to create"):
        kubeadm_join_args("failed: unable to create bootstrap token\n")


def _backend(tmp_path: Path) -> VagrantBackend:
    lab = load_lab(REPO / "examples" / "multinode" / "lab.yaml")
    return VagrantBackend(lab, State(tmp_path / "state.json"), Reporter(quiet=True))


def test_the_first_node_is_the_control_plane_and_the_others_join_it(tmp_path: Path) -> None:
    b = _backend(tmp_path)
    assert [b.roles(h.name) for h in b.lab.hosts] == [
        ("source",), ("node", "control-plane"), ("node", "worker"), ("node", "worker")]
    steps = {s.name: s for s in load_steps()}
    assert steps["kubeadm-join"].waits_for == "control-plane"
    assert steps["kubeadm-join"].roles == ("worker",)
    assert {s.name for s in steps.values() if "control-plane" in s.roles} == \
        {"kubeadm-init", "flannel", "multus"}
    # The token is never a parameter (a fresh one each time must not rerun a done join);
    # the cluster's CA hash is (a cluster made anew rejoins its workers).
    assert steps["kubeadm-join"].params == ("LAB_ADDRESS", "LAB_NODE_NAME", "LAB_CONTROL_PLANE",
                                            "LAB_JOIN_CA_HASH")
    # Every node installs the same things before it is the control plane or joins.
    node_steps = [s.name for s in steps.values() if "node" in s.roles]
    assert node_steps == ["bundle", "lab-nic", "iperf", "sysctl", "k8s-prep", "containerd",
                          "kube-packages", "receiver-image"]
    assert "LAB_CONTROL_PLANE" not in b.step_env("k8s")
    assert b.step_env("k8s-3")["LAB_CONTROL_PLANE"] == "192.168.56.11:6443"


# The join writes the cluster's CA ($CLUSTER_CA, a real certificate) where kubeadm does.
KUBEADM = """echo "kubeadm $*" >> "$CALLS"
case "$1" in
  join) [ -n "$JOIN_FAILS" ] && { echo "$JOIN_FAILS" >&2; exit 1; }
        mkdir -p "$LAB_KUBE_DIR/pki"
        touch "$LAB_KUBE_DIR/kubelet.conf"; cp "$CLUSTER_CA" "$LAB_KUBE_DIR/pki/ca.crt" ;;
  reset) rm -rf "$LAB_KUBE_DIR"/* ;;
esac"""


def _cert(path: Path) -> Path:
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1", "-subj",
                    "/CN=kubernetes", "-keyout", str(path.with_suffix(".key")), "-out",
                    str(path)], check=True, capture_output=True, timeout=60)
    return path


def _ca_hash(cert: Path) -> str:
    """kubeadm's discovery hash, the way its docs compute it."""
    from lab.backends.vagrant.backend import CA_HASH_SCRIPT

    out = subprocess.run(["sh", "-c", CA_HASH_SCRIPT, "sh", str(cert)], capture_output=True,
                         text=True, check=True, timeout=30).stdout
    return "sha256:" + out.split()[0]
KUBECTL = """echo "kubectl $*" >> "$CALLS"
[ -n "$NEVER_READY" ] && { [ "$NEVER_READY" = 1 ] || echo "$NEVER_READY" >&2; exit 1; }
[ -f "$LAB_KUBE_DIR/kubelet.conf" ] && printf True"""


def join(tmp_path: Path, **env: str) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    bin_dir, kube, cni = tmp_path / "bin", tmp_path / "kube", tmp_path / "cni"
    for folder in (bin_dir, kube, cni):
        folder.mkdir(exist_ok=True)
    for name, body in {"kubeadm": KUBEADM, "kubectl": KUBECTL,
                       "systemctl": 'echo "systemctl $*" >> "$CALLS"'}.items():
        (bin_dir / name).write_text(f"#!/bin/sh\n# FAKE {name}\n{body}\n")
        (bin_dir / name).chmod(0o755)
    (cni / "00-multus.conf").write_text("{}")
    calls = tmp_path / "calls"
    calls.touch()
    ca = tmp_path / "cluster-ca.crt"
    if not ca.exists():
        _cert(ca)
    script = (REPO / "provision" / "lib.sh").read_text() + "\n" + \
        (REPO / "provision" / "kubeadm-join.sh").read_text()
    full = {"PATH": f"{bin_dir}:/usr/bin:/bin", "CALLS": str(calls),
            "LAB_ADDRESS": "192.168.56.21", "LAB_NODE_NAME": "k8s-2",
            "LAB_CONTROL_PLANE": "192.168.56.11:6443", "LAB_NIC": "eth1",
            "LAB_CONTROL_PLANE_NIC": "eth1", "LAB_JOIN_TOKEN": TOKEN, "CLUSTER_CA": str(ca),
            "LAB_JOIN_CA_HASH": _ca_hash(ca), "LAB_KUBE_DIR": str(kube),
            "LAB_CNI_CONF_DIR": str(cni),
            "LAB_KUBELET_DEFAULTS": str(tmp_path / "kubelet"), "JOIN_FAILS": "",
            "NEVER_READY": "", **env}
    r = subprocess.run(["bash", "-s"], input=script, capture_output=True, text=True,
                       timeout=60, env=full)
    return r, calls.read_text().splitlines()


def _joins(calls: list[str]) -> list[str]:
    return [c for c in calls if c.startswith("kubeadm")]


def test_a_worker_joins_with_the_token_and_waits_until_it_is_ready(tmp_path: Path) -> None:
    r, calls = join(tmp_path)
    assert r.returncode == 0, r.stderr
    ca_hash = _ca_hash(tmp_path / "cluster-ca.crt")
    assert ca_hash.startswith("sha256:") and len(ca_hash) == 7 + 64
    assert _joins(calls) == [f"kubeadm join 192.168.56.11:6443 --token {TOKEN} "
                             f"--discovery-token-ca-cert-hash {ca_hash} --node-name k8s-2"]
    assert (tmp_path / "kubelet").read_text() == "KUBELET_EXTRA_ARGS=--node-ip=192.168.56.21\n"
    assert "k8s-2 is Ready and Multus wrote" in r.stdout
    # Run again: a worker of this cluster is not joined twice, nor reset while its API
    # is slow to answer (it waits, and says the API does not answer: retried).
    again, calls = join(tmp_path)
    assert again.returncode == 0 and len(_joins(calls)) == 1
    assert "k8s-2 joined this cluster already" in again.stdout
    slow, calls = join(tmp_path, NEVER_READY="connection refused", LAB_NODE_WAIT_S="1",
                       LAB_POLL_S="0.2")
    assert len(_joins(calls)) == 1 and slow.returncode == 75, slow.stderr
    assert "cause: the API server does not answer k8s-2" in slow.stderr


def test_a_worker_of_a_cluster_made_anew_is_reset_and_joins_again(tmp_path: Path) -> None:
    r, _ = join(tmp_path)
    assert r.returncode == 0, r.stderr
    # The control plane was made anew: another CA, whose hash the join step now gets.
    _cert(tmp_path / "cluster-ca.crt")
    again, calls = join(tmp_path)
    assert again.returncode == 0, again.stderr
    assert [c.split()[1] for c in _joins(calls)] == ["join", "reset", "join"]


def test_a_half_done_join_is_reset_before_joining_again(tmp_path: Path) -> None:
    """kubelet.conf left by a join that never made a Ready node: reset, join, and then a
    failure that names what to look at when the node still does not become Ready."""
    (tmp_path / "kube").mkdir()
    (tmp_path / "kube" / "kubelet.conf").touch()
    r, calls = join(tmp_path, NEVER_READY="1", LAB_NODE_WAIT_S="1", LAB_POLL_S="0.2")
    joins = _joins(calls)
    assert joins[0] == "kubeadm reset -f" and joins[1].startswith(
        "kubeadm join 192.168.56.11:6443") and len(joins) == 2
    assert r.returncode == 1
    assert "cause: k8s-2 joined but is not a Ready node with Multus's" in r.stderr
    assert "kubectl describe node k8s-2" in r.stderr


@pytest.mark.parametrize(("said", "status", "cause"), [
    ("error execution phase preflight: couldn't validate the identity of the API Server: "
     'Get "https://192.168.56.11:6443/api/v1/namespaces/kube-public/configmaps/cluster-info":'
     " dial tcp 192.168.56.11:6443: connect: connection refused", 75,
     "the control plane at 192.168.56.11:6443 does not answer: connection refused"),
    ("error execution phase preflight: [preflight] Some fatal errors occurred:\n"
     "\t[ERROR Swap]: running with swap on is not supported", 1,
     "kubeadm join 192.168.56.11:6443 failed: \t[ERROR Swap]: running with swap on is not "
     "supported"),
])
def test_a_failed_join_is_retried_only_when_the_control_plane_did_not_answer(
        tmp_path: Path, said: str, status: int, cause: str) -> None:
    r, _ = join(tmp_path, JOIN_FAILS=said)
    assert r.returncode == status and f"cause: {cause}" in r.stderr, r.stderr


def test_a_node_with_another_lab_nic_name_is_refused_before_joining(tmp_path: Path) -> None:
    r, calls = join(tmp_path, LAB_NIC="enp0s8")
    assert r.returncode == 1 and _joins(calls) == []
    assert ("cause: the lab NIC of k8s-2 is enp0s8 and the control plane's is eth1") in \
        r.stderr
