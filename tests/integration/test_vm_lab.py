"""Real VMs: the vagrant backend with the libvirt provider, under QEMU, on a small box built
from Debian packages (tests/vm/build-box.sh, cached in /var/cache/mcast-lab/box).

Boots `mcastsrc` and `k8s` with `lab up --provider libvirt`, provisions them, runs
host-baseline between them (datagram counts from iperf), checks that a second `lab up`
skips every step, boots a second lab of another name beside it (its own subnets), destroys
that one with the first left intact, and checks that `lab destroy` leaves no domain and no
network behind. The VMs' networks are isolated libvirt networks (no forwarding, no DNS):
nothing leaves the machine. One lab is booted for the whole module (a boot costs minutes).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from lab.backends.vagrant.cli import parse_status
from tests.support import REPO, Project, make_project

BOX_DIR = Path(os.environ.get("LAB_TEST_BOX_DIR", "/var/cache/mcast-lab/box"))
BOX_NAME = "mcast-lab/debian-12-test"
TIMES: dict[str, float] = {}  # seconds, printed beside each other (no timed assertion)

pytestmark = [pytest.mark.vm, pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("vagrant") or not shutil.which("virsh")
    or not shutil.which("qemu-system-x86_64"),
    reason="needs root, vagrant, vagrant-libvirt, libvirt and QEMU (scripts/test installs them)")]


def _run(*argv: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=True)


DAEMON_PIDFILES = (Path("/run/libvirtd.pid"), Path("/run/virtlogd.pid"))


def _running(pidfile: Path) -> int | None:
    try:
        pid = int(pidfile.read_text().split()[0])
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError, IndexError):
        return None


@pytest.fixture(scope="module")
def box() -> Iterator[Path]:
    _run(str(REPO / "tests" / "vm" / "build-box.sh"), str(BOX_DIR), timeout=1200)
    already = {p for p in DAEMON_PIDFILES if _running(p)}
    _run(str(REPO / "tests" / "vm" / "start-libvirt.sh"), timeout=120)
    listed = _run("vagrant", "box", "list", "--machine-readable", timeout=120).stdout
    stamp = (BOX_DIR / "stamp").read_text().strip()
    marker = BOX_DIR / "added"
    if BOX_NAME not in listed or not marker.exists() or marker.read_text().strip() != stamp:
        _run("vagrant", "box", "add", "--force", "--name", BOX_NAME, str(BOX_DIR / "test.box"),
             timeout=600)
        marker.write_text(stamp + "\n")
    yield BOX_DIR
    # The daemons this fixture started end with it, each by the pid in its own pidfile.
    for pidfile in DAEMON_PIDFILES:
        pid = _running(pidfile)
        if pidfile not in already and pid is not None:
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 15
            while _running(pidfile) == pid and time.monotonic() < deadline:
                time.sleep(0.2)


def _domains(prefix: str) -> list[str]:
    out = _run("virsh", "-c", "qemu:///system", "list", "--all", "--name", timeout=60).stdout
    return [d for d in out.split() if d.startswith(prefix)]


def _networks(prefix: str) -> list[str]:
    out = _run("virsh", "-c", "qemu:///system", "net-list", "--all", "--name", timeout=60).stdout
    return [n for n in out.split() if n.startswith(prefix)]


def _vm_lab_data(box: Path) -> dict:
    data = yaml.safe_load((REPO / "lab.yaml").read_text())
    data["vagrant"] = dict(data["vagrant"], provider="libvirt", libvirt={
        "driver": "qemu",  # KVM is not usable on these machines; QEMU emulates
        # Nothing leaves this machine: no NAT on the management network either.
        "management": "isolated",
        "direct_boot": {"kernel": str(box / "vmlinuz"), "initrd": str(box / "initrd.img"),
                        "cmd_line": "root=/dev/vda rw console=ttyS0 net.ifnames=0 quiet"}})
    data["vagrant"]["boxes"] = dict(data["vagrant"]["boxes"],
                                    libvirt={"name": BOX_NAME, "version": "0"})
    data["hosts"] = [dict(h, memory=768, cpus=1) for h in data["hosts"]]
    # No internet here: the Kubernetes tier (packages, kubeadm, flannel, Multus) cannot run;
    # the node's offline preparation (swap, modules, sysctls) does.
    data["kubernetes"] = dict(data["kubernetes"], provision=False)
    return data


@pytest.fixture(scope="module")
def vm_lab(box: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    data = _vm_lab_data(box)
    project = make_project(tmp_path_factory.mktemp("vm") / "proj", backend="vagrant",
                           vagrant=data["vagrant"], hosts=data["hosts"],
                           kubernetes=data["kubernetes"])
    shutil.copy(REPO / "Vagrantfile", project.dir / "Vagrantfile")
    try:
        yield project
    finally:
        project.lab("destroy", timeout=900)  # the last test asserts on it; this is cleanup


def _state(project: Project) -> dict:
    return json.loads((project.dir / ".lab" / project.name / "state.json").read_text())


def test_two_vms_up_provisioned_and_host_baseline(vm_lab: Project) -> None:
    project = vm_lab
    start = time.monotonic()
    up = project.lab("up", "--provider", "libvirt", timeout=1500)
    up_s = time.monotonic() - start
    assert up.returncode == 0, up.stdout + up.stderr
    print(f"\nlab up (2 VMs, QEMU): {up_s:.1f} s")
    TIMES["lab up"] = up_s
    # Output that is no terminal still shows how a minute-long boot is doing.
    assert "… vagrant up (libvirt): mcastsrc, k8s (" in up.stderr, up.stderr
    assert sorted(_domains(project.name)) == [f"{project.name}-k8s",
                                              f"{project.name}-mcastsrc"]

    # The parser on the real `vagrant status --machine-readable` of this lab (kept for
    # the unit tests as tests/data/vagrant/status-running.txt when LAB_CAPTURE is set).
    own = project.dir / ".lab" / project.name
    real = subprocess.run(
        ["vagrant", "status", "--machine-readable"], cwd=project.dir, capture_output=True,
        text=True, timeout=300, check=True,
        env={**os.environ, "LAB_VAGRANT_JSON": str(own / "vagrant.json"),
             "VAGRANT_DOTFILE_PATH": str(own / "vagrant"),
             "VAGRANT_DEFAULT_PROVIDER": "libvirt"}).stdout
    assert parse_status(real) == {"mcastsrc": "running", "k8s": "running"}, real
    if os.environ.get("LAB_CAPTURE"):
        (REPO / "tests" / "data" / "vagrant" / "status-running.txt").write_text(real)

    status = json.loads(project.lab("status", "--json", check_codes=(0,)).stdout)
    assert status["state"] == "up"
    assert [h["state"] for h in status["hosts"]] == ["running", "running"]
    details = {h["name"]: h["detail"] for h in status["hosts"]}
    assert "provisioned 4/4 steps" in details["mcastsrc"], status  # bundle: none given
    assert "provisioned 5/5 steps" in details["k8s"], status
    # The self-check ran for real on what exists here; Kubernetes says it is absent.
    assert re.search(r"self-check: 5/5 passed", up.stderr), up.stderr
    checks = {c["name"]: c for c in status["selfcheck"]}
    assert all(c["ok"] for c in checks.values()), checks
    assert checks["k8s-lab-nic"]["message"] == "k8s: eth1 has 192.168.56.11/24"
    assert checks["mcastsrc-iperf"]["message"].startswith("mcastsrc: iperf version 2")
    assert checks["kubernetes"]["message"].startswith("not provisioned")
    assert status["problems"] == []

    # The node's offline Kubernetes preparation really happened (through `lab ssh`).
    probe = project.lab("ssh", "k8s", "--", "sh", "-c",
                        "cat /proc/sys/net/bridge/bridge-nf-call-iptables; "
                        "swapon --noheadings | wc -l; lsmod | grep -c '^br_netfilter'",
                        timeout=120)
    assert probe.returncode == 0, probe.stdout + probe.stderr
    assert probe.stdout.split() == ["1", "0", "1"], probe.stdout

    run = project.lab("run", "host-baseline", timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    runs = sorted((project.dir / "results").glob("[0-9]*"))
    (case,) = json.loads((runs[-1] / "summary.json").read_text())["scenarios"]
    (receiver,) = case["receivers"]
    assert case["sent"] >= 440 and receiver["received"] == case["sent"], case
    assert receiver["iface"] == "eth1"  # found by address during provisioning


def test_a_second_lab_up_skips_every_step(vm_lab: Project) -> None:
    project = vm_lab
    start = time.monotonic()
    again = project.lab("up", "--provider", "libvirt", timeout=900)
    print(f"\nsecond lab up: {time.monotonic() - start:.1f} s")
    assert again.returncode == 0, again.stdout + again.stderr
    # One `vagrant status` saw the VMs running: no `vagrant up` this time.
    assert "VMs already running" in again.stderr, again.stderr
    assert "vagrant up (" not in again.stderr, again.stderr
    for host in ("mcastsrc", "k8s"):
        for step in ("lab-nic", "iperf", "sysctl"):
            assert f"{host}: {step} already done" in again.stderr, again.stderr
    assert "k8s: k8s-prep already done" in again.stderr
    assert " done (" not in again.stderr  # nothing ran again


def test_a_capture_on_the_vms_sees_the_join_and_every_datagram(vm_lab: Project) -> None:
    """tcpdump on both VMs (over SSH, through sudo) during host-baseline: the node's IGMP
    join and every datagram on its lab NIC, every datagram leaving the source's."""
    project = vm_lab
    scenario = project.dir / "scenarios" / "host-baseline-capture.yaml"
    scenario.write_text((project.dir / "scenarios" / "host-baseline.yaml").read_text()
                        .replace("name: host-baseline", "name: host-baseline-capture")
                        + "capture: [k8s, mcastsrc]\n")
    before = set((project.dir / "results").glob("[0-9]*"))
    run = project.lab("run", "--report", "host-baseline-capture", timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    (folder,) = set((project.dir / "results").glob("[0-9]*")) - before
    (case,) = json.loads((folder / "summary.json").read_text())["scenarios"]
    (receiver,) = case["receivers"]
    at = {c["point"]: c for c in case["captures"]}
    assert (at["k8s"]["iface"], at["mcastsrc"]["iface"]) == ("eth1", "eth1")
    joins = [m for m in at["k8s"]["igmp"] if m["group"] == "224.0.67.67" and m["kind"] == "join"]
    assert joins and joins[0]["source"] == "192.168.56.11", at["k8s"]
    assert at["k8s"]["datagrams"] == receiver["received"] == case["sent"]
    assert at["mcastsrc"]["datagrams"] == case["sent"]
    for c in at.values():
        assert c["error"] is None and (folder / c["file"]).stat().st_size > 0
    assert (folder / "report.html").is_file()
    lab_json = json.loads((folder / "lab.json").read_text())
    assert {h["name"]: h["nic"] for h in lab_json["hosts"]} == {"mcastsrc": "eth1",
                                                                 "k8s": "eth1"}
    # Nothing left behind on the VMs, and `lab igmp` reads both over SSH.
    left = project.lab("ssh", "k8s", "--", "sh", "-c", "ls /tmp/*capture* 2>/dev/null | wc -l",
                       timeout=120)
    assert left.stdout.strip() == "0", left.stdout + left.stderr
    igmp = json.loads(project.lab("igmp", "--json", check_codes=(0,)).stdout)
    assert {(r["name"], r["iface"]) for r in igmp} >= {("k8s", "eth1"), ("mcastsrc", "eth1")}


VM_SNOOPING = {
    "name": "vm-snooping", "group": "224.0.67.74", "port": 5008, "rate": "1M",
    "duration": 4, "sender": {"host": "mcastsrc"},
    "receivers": [{"name": "nic-k8s", "placement": "host", "host": "k8s"}],
    "expect": {"receive": True},
    "expect_port": [{"host": "k8s", "traffic": "all"}, {"host": "k8s-2", "traffic": "none"}]}
VM_NODES = {
    "name": "vm-nodes", "group": "224.0.67.75", "port": 5009, "rate": "1M", "duration": 4,
    "sender": {"host": "mcastsrc"}, "expect": {"receive": True},
    "receivers": [{"name": "nic-k8s", "placement": "host", "host": "k8s"},
                  {"name": "nic-k8s-2", "placement": "host", "host": "k8s-2"}]}


def test_two_labs_side_by_side_and_destroying_one_leaves_the_other(box: Path,
                                                                    vm_lab: Project) -> None:
    """The second lab has two node VMs and the source on a lab switch that snoops IGMP
    (the libvirt lab network's bridge, set from lab.yaml's `switch:`): host receivers on
    both nodes, and the snooping verdict from the bridge's tap counters."""
    first = vm_lab
    assert json.loads(first.lab("status", "--json", check_codes=(0,)).stdout)["state"] == "up"
    # A second lab of the same project: its own name, file and lab subnet.
    data = yaml.safe_load(first.lab_file.read_text())
    other = "u" + first.name[1:]
    data["name"] = other
    data["network"] = dict(data["network"], subnet="192.168.57.0/24")
    data["hosts"] = [dict(h, address=h["address"].replace("192.168.56.", "192.168.57."))
                     for h in data["hosts"]]
    data["hosts"].append(dict(data["hosts"][-1], name="k8s-2", address="192.168.57.21"))
    data["switch"] = {"igmp_snooping": True, "igmp_querier": True, "igmp_version": 2}
    data["attachment"]["range"] = {"start": "192.168.57.100", "end": "192.168.57.254"}
    (first.dir / "other.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    for scenario in (VM_SNOOPING, VM_NODES):
        (first.dir / f"{scenario['name']}.yaml").write_text(yaml.safe_dump(scenario))
    second = Project(first.dir, other, "other.yaml")
    try:
        up = second.lab("up", "--provider", "libvirt", timeout=1800)
        assert up.returncode == 0, up.stdout + up.stderr
        status = json.loads(second.lab("status", "--json", check_codes=(0,)).stdout)
        assert status["state"] == "up" and [h["state"] for h in status["hosts"]] == \
            ["running"] * 3, status
        subnets = {_state(lab)["management_subnet"] for lab in (first, second)}
        assert len(subnets) == 2, subnets  # each lab its own management network
        assert sorted(_networks(second.name)) == [f"{other}-lab", f"{other}-mgmt"]
        bridge = _run("virsh", "-c", "qemu:///system", "net-info", f"{other}-lab",
                      timeout=60).stdout.split("Bridge:")[1].split()[0]
        settings = Path("/sys/class/net") / bridge / "bridge"
        assert [(settings / k).read_text().strip() for k in
                ("multicast_snooping", "multicast_querier", "multicast_igmp_version")] == \
            ["1", "1", "2"]
        run = second.lab("run", str(first.dir / "vm-nodes.yaml"),
                         str(first.dir / "vm-snooping.yaml"), timeout=600)
        assert run.returncode == 0, run.stdout + run.stderr
        result = sorted((first.dir / "results").glob("[0-9]*"))[-1]
        cases = {c["name"]: c for c in json.loads((result / "summary.json").read_text())[
            "scenarios"]}
        nodes = cases["vm-nodes"]
        assert {r["host"]: r["received"] for r in nodes["receivers"]} == \
            {"k8s": nodes["sent"], "k8s-2": nodes["sent"]} and nodes["sent"] > 300, nodes
        snoop = cases["vm-snooping"]
        ports = {p["host"]: p for p in snoop["ports"]}
        assert ports["k8s"]["packets"] >= snoop["sent"] > 300, snoop
        # No member behind k8s-2's tap: the bridge kept the stream off it.
        assert ports["k8s-2"]["verdict"] == "pass" and \
            ports["k8s-2"]["packets"] < snoop["sent"] // 20, ports
    finally:
        destroy = second.lab("destroy", timeout=900)
    assert destroy.returncode == 0, destroy.stdout + destroy.stderr
    assert _domains(other) == [] and _networks(other) == []
    assert not (first.dir / ".lab" / other / "state.json").exists()
    # The first lab is untouched: up, both VMs running, reachable, its networks there.
    status = json.loads(first.lab("status", "--json", check_codes=(0,)).stdout)
    assert status["state"] == "up" and [h["state"] for h in status["hosts"]] == \
        ["running", "running"], status
    assert sorted(_domains(first.name)) == [f"{first.name}-k8s", f"{first.name}-mcastsrc"]
    assert sorted(_networks(first.name)) == [f"{first.name}-lab", f"{first.name}-mgmt"]
    probe = first.lab("ssh", "mcastsrc", "--", "true", timeout=120)
    assert probe.returncode == 0, probe.stdout + probe.stderr


def test_lab_logs_gathers_the_vms_without_key_material(vm_lab: Project) -> None:
    import tarfile

    logs = vm_lab.lab("logs", timeout=600)
    assert logs.returncode == 0, logs.stderr
    with tarfile.open(logs.stdout.strip()) as tar:
        files = {m.name.split("/", 1)[1]: tar.extractfile(m).read().decode()  # type: ignore
                 for m in tar.getmembers() if m.isfile()}
    assert "Linux k8s" in files["hosts/k8s/uname.txt"]
    assert "192.168.56.12/24" in files["hosts/mcastsrc/ip-addr.txt"]
    assert "224.0.0.1" in files["hosts/k8s/ip-maddr.txt"]
    assert "# attempt 1" in files["provisioning-logs/k8s/k8s-prep.log"]
    assert files["hosts/k8s/kubernetes/nodes.txt"] == \
        "not provisioned (kubernetes.provision: false)\n"
    assert '"management_subnet"' in files["state.json"] and "vagrant.json" in files
    everything = "\n".join(files.values())
    assert "PRIVATE KEY" not in everything and "-data:" not in everything


def _step_on_node(project: Project, step: str, env: dict[str, str],
                  fakes: dict[str, str], before: str = "") -> subprocess.CompletedProcess[str]:
    """Run a shipped step (after lib.sh) as root on the real k8s VM, with FAKE tools first
    on PATH standing for what needs the internet (kubeadm, kubectl, curl): the step's own
    decisions run for real against the state `before` prepares on the VM."""
    lines = ["set -e", "mkdir -p /tmp/lab-test/bin"]
    for name, body in fakes.items():
        lines.append(f"cat > /tmp/lab-test/bin/{name} <<'FAKE'\n#!/bin/sh\n# FAKE {name}\n"
                     f"{body}\nFAKE\nchmod +x /tmp/lab-test/bin/{name}")
    script = (REPO / "provision" / "lib.sh").read_text() + "\n" + \
        (REPO / "provision" / step).read_text()
    lines += [before, "cat > /tmp/lab-test/step.sh <<'STEP'\n" + script + "\nSTEP",
              "export PATH=/tmp/lab-test/bin:$PATH " +
              " ".join(f"{k}={v}" for k, v in env.items()),
              "exec bash /tmp/lab-test/step.sh"]
    return project.lab("ssh", "k8s", "--", "sudo", "-n", "bash", "-c", "\n".join(lines),
                       timeout=300)


def _calls(project: Project) -> list[str]:
    return project.lab("ssh", "k8s", "--", "cat", "/tmp/lab-test/calls",
                       timeout=120).stdout.splitlines()


KUBEADM = """echo "kubeadm $*" >> /tmp/lab-test/calls
case "$1 $2 $3" in
  "version -o short") echo v1.36.3 ;;
  "config images list") echo registry.k8s.io/kube-apiserver:v1.36.3
                        echo registry.k8s.io/pause:3.10.2 ;;
  reset*) rm -f /etc/kubernetes/admin.conf /tmp/lab-test/api-up ;;
  init*) mkdir -p /etc/kubernetes; echo 'apiVersion: v1' > /etc/kubernetes/admin.conf
         touch /tmp/lab-test/api-up ;;
esac"""
KUBECTL = """echo "kubectl $*" >> /tmp/lab-test/calls
case "$*" in *readyz*) [ -e /tmp/lab-test/api-up ] ;; *) exit 0 ;; esac"""


def test_kubeadm_init_decides_by_readyz_and_starts_over_after_a_failed_init(
        vm_lab: Project) -> None:
    """A failed init leaves admin.conf behind; the step must not take it for done."""
    env = {"LAB_ADDRESS": "192.168.56.11", "LAB_POD_SUBNET": "10.244.0.0/16",
           "LAB_NODE_NAME": "k8s", "LAB_PAUSE_IMAGE": "registry.k8s.io/pause:3.10.2",
           "LAB_API_WAIT_S": "3", "LAB_STATE_DIR": "/tmp/lab-test/state"}
    fakes = {"kubeadm": KUBEADM, "kubectl": KUBECTL}
    try:
        half = _step_on_node(vm_lab, "kubeadm-init.sh", env, fakes, before=(
            "rm -f /tmp/lab-test/calls /tmp/lab-test/api-up; mkdir -p /etc/kubernetes; "
            "echo half > /etc/kubernetes/admin.conf; mkdir -p /tmp/lab-test/state/steps; "
            "touch /tmp/lab-test/state/steps/flannel /tmp/lab-test/state/steps/multus "
            "/tmp/lab-test/state/steps/containerd"))
        assert half.returncode == 0, half.stdout + half.stderr
        # The reset wiped what flannel and Multus applied: their markers went with it.
        markers = vm_lab.lab("ssh", "k8s", "--", "ls", "/tmp/lab-test/state/steps",
                             timeout=120).stdout.split()
        assert markers == ["containerd"], markers
        kubeadm = [c for c in _calls(vm_lab) if c.startswith("kubeadm ")
                   and c != "kubeadm version -o short" and "images list" not in c]
        assert [c.split()[1] for c in kubeadm] == ["reset", "config", "init"], kubeadm
        assert "config images pull --kubernetes-version v1.36.3" in kubeadm[1]
        kubelet = vm_lab.lab("ssh", "k8s", "--", "cat", "/etc/default/kubelet", timeout=120)
        assert kubelet.stdout.strip() == "KUBELET_EXTRA_ARGS=--node-ip=192.168.56.11"
        # Now the API answers: done, nothing is reset or initialised again.
        again = _step_on_node(vm_lab, "kubeadm-init.sh", env, fakes,
                              before="rm -f /tmp/lab-test/calls")
        assert again.returncode == 0 and "control plane answers /readyz" in again.stdout
        assert not [c for c in _calls(vm_lab) if " init" in c or " reset" in c]
        # kubeadm wants another sandbox image than containerd was given: said, not hidden.
        other = _step_on_node(vm_lab, "kubeadm-init.sh",
                              {**env, "LAB_PAUSE_IMAGE": "registry.k8s.io/pause:3.9"}, fakes)
        assert other.returncode == 1
        assert "cause: kubeadm v1.36.3 wants the sandbox image registry.k8s.io/pause:3.10.2, " \
            "containerd was set to registry.k8s.io/pause:3.9" in other.stderr, other.stderr
    finally:
        vm_lab.lab("ssh", "k8s", "--", "sudo", "-n", "rm", "-rf", "/tmp/lab-test",
                   "/etc/kubernetes", "/etc/default/kubelet", timeout=120)


def test_kube_packages_are_done_only_when_all_three_are_pinned_and_held(
        vm_lab: Project) -> None:
    """kubeadm at the pinned version is not enough: kubelet and kubectl too, all held."""
    env = {"LAB_K8S_MINOR": "1.36", "LAB_K8S_PACKAGE_VERSION": "1.36.3-1.1"}
    def dpkg(status_of_kubectl: str) -> str:
        return (f'case "$3" in kubectl) echo "1.36.3-1.1 {status_of_kubectl}" ;; '
                '*) echo "1.36.3-1.1 hold ok installed" ;; esac')
    try:
        held = _step_on_node(vm_lab, "kube-packages.sh", env,
                             {"dpkg-query": dpkg("hold ok installed")})
        assert held.returncode == 0 and "present and held" in held.stdout, held.stderr
        # kubectl installed but not held: the step goes on to install, which here (no
        # internet) ends at apt with no way out; the old check stopped at kubeadm.
        loose = _step_on_node(vm_lab, "kube-packages.sh", env,
                              {"dpkg-query": dpkg("install ok installed")})
        assert loose.returncode == 76 and "apt reaches none of its mirrors" in loose.stderr, \
            loose.stdout + loose.stderr
    finally:
        vm_lab.lab("ssh", "k8s", "--", "sudo", "-n", "rm", "-rf", "/tmp/lab-test",
                   timeout=120)


def test_multus_is_ready_only_when_its_cni_config_is_written(vm_lab: Project) -> None:
    """The daemonset rolls out before the daemon writes 00-multus.conf (it has no
    readiness probe): the step waits for the file, and raises the memory limit."""
    curl = ('out=""; while [ $# -gt 0 ]; do [ "$1" = -o ] && out=$2; shift; done\n'
            "printf '%s\\n' '        image: ghcr.io/k8snetworkplumbingwg/multus-cni:"
            "snapshot-thick' '            memory: \"50Mi\"' > \"$out\"")
    env = {"LAB_MULTUS": "v4.3.0", "LAB_MULTUS_WAIT_S": "4"}
    fakes = {"kubectl": KUBECTL, "curl": curl}
    try:
        missing = _step_on_node(vm_lab, "multus.sh", env, fakes,
                                before="rm -f /etc/cni/net.d/00-multus.conf")
        assert missing.returncode == 1
        assert "cause: Multus did not become ready (daemonset rolled out and " \
            "/etc/cni/net.d/00-multus.conf written) within 4 s" in missing.stderr
        written = _step_on_node(vm_lab, "multus.sh", env, fakes, before=(
            "mkdir -p /etc/cni/net.d; echo '{}' > /etc/cni/net.d/00-multus.conf"))
        assert written.returncode == 0 and "Multus ready" in written.stdout, written.stderr
        manifest = vm_lab.lab("ssh", "k8s", "--", "cat", "/tmp/multus-daemonset-thick.yml",
                              timeout=120).stdout
        assert "multus-cni:v4.3.0-thick" in manifest and 'memory: "300Mi"' in manifest
    finally:
        vm_lab.lab("ssh", "k8s", "--", "sudo", "-n", "rm", "-rf", "/tmp/lab-test",
                   "/etc/cni", "/tmp/multus-daemonset-thick.yml", timeout=120)


def test_ctrl_c_ends_a_step_running_on_the_vm_within_seconds(vm_lab: Project,
                                                              tmp_path: Path) -> None:
    """The provisioning engine over SSH to the real VM, as `lab up` drives it, with a step
    that would run 300 s: SIGINT ends `lab`'s side and the step on the VM (its session,
    children too) within seconds."""
    ssh = _state(vm_lab)["ssh"]["k8s"]
    script = tmp_path / "long.sh"
    script.write_text("sleep 300 & echo $! > /tmp/lab-long.child; wait\n")
    driver = tmp_path / "drive.py"
    driver.write_text(
        "import json, sys\nfrom pathlib import Path\n"
        "from lab.remote.provision import Provisioner, Step\n"
        "from lab.remote.ssh import SshHost, SshTarget\nfrom lab.ui import Reporter\n"
        "host = SshHost('k8s', SshTarget(**json.loads(sys.argv[1])))\n"
        "step = Step('long', Path(sys.argv[2]), ('node',), 600, 0)\n"
        "Provisioner([step], Path(sys.argv[3]), Reporter(quiet=True), '/tmp/lab-long')"
        ".provision([(host, 'node', {})])\n")
    proc = subprocess.Popen([sys.executable, str(driver), json.dumps(ssh), str(script),
                             str(tmp_path / "logs")], cwd=REPO, stderr=subprocess.PIPE,
                            text=True)
    try:
        deadline = time.monotonic() + 60
        child = ""
        while not child and time.monotonic() < deadline:  # the step runs on the VM
            time.sleep(0.5)
            child = vm_lab.lab("ssh", "k8s", "--", "cat", "/tmp/lab-long.child",
                               timeout=60).stdout.strip()
        assert child.isdigit(), proc.stderr.read() if proc.poll() is not None else ""
        start = time.monotonic()
        proc.send_signal(signal.SIGINT)
        proc.wait(60)
        stopped_in = time.monotonic() - start
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    print(f"\nCtrl-C to a step on the VM: {stopped_in:.1f} s")
    assert stopped_in < 10, proc.stderr.read()
    gone = vm_lab.lab("ssh", "k8s", "--", "sh", "-c", f"[ -d /proc/{child} ] || "
                      "echo gone; sudo -n rm -rf /tmp/lab-long /tmp/lab-long.child",
                      timeout=120)
    assert gone.stdout.strip() == "gone", gone.stdout + gone.stderr


def test_without_internet_the_kubernetes_tier_fails_clearly(vm_lab: Project) -> None:
    """The VMs' isolation is a user's VMs without internet: with the Kubernetes tier on,
    `lab doctor` warns first, `lab up` fails at once at the first download naming the
    step, the cause in one line and the way out, `lab status` names the failed step and
    its log (exit 3), and `lab ssh` still opens a shell on the half-provisioned node."""
    project = vm_lab
    data = yaml.safe_load(project.lab_file.read_text())
    data["kubernetes"]["provision"] = True
    project.lab_file.write_text(yaml.safe_dump(data, sort_keys=False))
    try:
        doctor = project.lab("doctor", "--json", "--provider", "libvirt", timeout=300)
        checks = {c["name"]: c for c in json.loads(doctor.stdout)}
        assert (checks["vm-internet"]["ok"], checks["vm-internet"]["blocking"]) == \
            (False, False), checks
        assert checks["node-size"]["ok"] is False and "kubeadm needs 2 CPUs" in \
            checks["node-size"]["message"], checks

        start = time.monotonic()
        up = project.lab("up", "--provider", "libvirt", timeout=900)
        took = time.monotonic() - start
        print(f"\nlab up failing at the first download: {took:.1f} s")
        assert up.returncode == 3, up.stdout + up.stderr
        log = project.dir / ".lab" / project.name / "logs" / "k8s" / "containerd.log"
        assert re.search(r"k8s: step containerd failed \(exit status 76\): apt reaches none "
                         r"of its mirrors: (Temporary failure resolving|Could not resolve)",
                         up.stderr), up.stderr
        assert f"log: {log}" in up.stderr and "kubernetes.provision: false" in up.stderr
        assert "bash -s" not in up.stderr and "LAB_" not in up.stderr  # no command dump
        assert ", 2 attempts" not in up.stderr  # no way out: not retried
        assert "Temporary failure resolving" in log.read_text() or \
            "Could not resolve" in log.read_text()

        status = project.lab("status", timeout=300)
        assert status.returncode == 3, status.stdout + status.stderr
        flat = " ".join(status.stdout.split())
        assert "failed at containerd" in flat and f"step containerd failed (log: {log})" in \
            flat, status.stdout
        shell = project.lab("ssh", "k8s", "--", "cat", "/var/lib/mcast-lab/lab-nic",
                            timeout=120)
        assert shell.returncode == 0 and shell.stdout.strip() == "eth1", shell.stderr
    finally:
        data["kubernetes"]["provision"] = False
        project.lab_file.write_text(yaml.safe_dump(data, sort_keys=False))


def _on(project: Project, host: str, *argv: str) -> subprocess.CompletedProcess[str]:
    return project.lab("ssh", host, "--", *argv, timeout=300)


def _versions(project: Project, host: str, *packages: str) -> dict[str, str]:
    out = _on(project, host, "dpkg-query", "-W", "-f", "${Package} ${Version}\\n",
              *packages).stdout
    return dict(line.split(" ", 1) for line in out.splitlines() if " " in line)


def test_lab_lock_lists_the_real_versions_and_locked_names_an_edited_one(
        vm_lab: Project) -> None:
    """The lock the first `lab up` wrote holds what the VMs really have; `lab up --locked`
    with one version edited fails naming that package (exit 3), and passes once the lock
    is what it was."""
    from lab.backends.vagrant.boxes import box_dir, tree_sha256

    project = vm_lab
    path = project.dir / "lab.lock"
    original = path.read_text()
    lock = yaml.safe_load(original)
    assert lock["backend"] == "vagrant" and lock["provider"] == "libvirt"
    folder = box_dir(BOX_NAME, "0", "libvirt")
    assert folder is not None
    assert lock["box"] == {"name": BOX_NAME, "version": "0", "provider": "libvirt",
                           "sha256": tree_sha256(folder)}
    for host in ("mcastsrc", "k8s"):
        listed = lock["hosts"][host]
        real = _versions(project, host)  # every installed package
        assert listed["packages"] == real and len(real) > 100, host
        iperf = _on(project, host, "sh", "-c", "iperf --version 2>&1 | head -n 1").stdout
        assert listed["iperf"] == iperf.strip() and iperf.startswith("iperf version 2")
    edited = yaml.safe_load(original)
    real_iperf = edited["hosts"]["mcastsrc"]["packages"]["iperf"]
    edited["hosts"]["mcastsrc"]["packages"]["iperf"] = "2.1.9-9"
    path.write_text(yaml.safe_dump(edited, sort_keys=False))
    try:
        up = project.lab("up", "--locked", "--provider", "libvirt", timeout=900)
        assert up.returncode == 3, up.stdout + up.stderr
        assert (f"the lab that came up is not the locked one: hosts.mcastsrc.packages.iperf: "
                f"{real_iperf} here, the lock says 2.1.9-9") in up.stderr, up.stderr
    finally:
        path.write_text(original)
    same = project.lab("up", "--locked", "--provider", "libvirt", timeout=900)
    assert same.returncode == 0, same.stdout + same.stderr
    assert f"lab {project.name} is exactly what lab.lock lists" in same.stderr
    assert path.read_text() == original  # a lab that is its lock leaves the file as it was


def _lib_on_node(project: Project, body: str, env: dict[str, str]
                 ) -> subprocess.CompletedProcess[str]:
    script = (REPO / "provision" / "lib.sh").read_text() + "\n" + body
    exports = " ".join(f"{k}={v}" for k, v in env.items())
    return project.lab("ssh", "k8s", "--", "sudo", "-n", "env", *exports.split(), "bash",
                       "-c", script, timeout=600)


def _bundled_versions(bundle: Path) -> dict[str, str]:
    """package -> version, from the .deb names of the bundle (name_version_arch.deb)."""
    from urllib.parse import unquote

    found = {}
    for deb in (bundle / "debs").glob("*.deb"):
        name, version, _ = deb.name.split("_")
        found[name] = unquote(version)
    return found


def test_a_bundle_made_here_provisions_the_vms_with_no_way_out(
        vm_lab: Project, tmp_path: Path) -> None:
    """A bundle of this machine's Debian packages (iperf, tcpdump, containerd, runc, the
    CNI plugins, with every dependency) provisions the VMs, whose networks reach nothing
    but the lab; a copy with one corrupt file is refused by name before anything."""
    project = vm_lab
    bundle = tmp_path / "bundle"
    made = project.lab("bundle", "--out", str(bundle), "--package", "runc", "--package",
                       "containernetworking-plugins", timeout=1200)
    assert made.returncode == 0, made.stdout + made.stderr
    versions = _bundled_versions(bundle)
    for package in ("iperf", "tcpdump", "containerd", "runc", "containernetworking-plugins"):
        assert package in versions, package
    manifest = yaml.safe_load((bundle / "bundle.yaml").read_text())
    assert manifest["box"]["name"] == BOX_NAME and manifest["release"] == "bookworm"

    # The VMs reach no name server and no mirror: whatever gets installed comes from
    # the bundle.
    offline = _on(project, "k8s", "sh", "-c", "getent hosts deb.debian.org; echo rc=$?")
    assert "rc=2" in offline.stdout, offline.stdout

    corrupt = tmp_path / "corrupt"
    shutil.copytree(bundle, corrupt)
    (victim,) = sorted((corrupt / "debs").glob("tcpdump_*.deb"))
    data = bytearray(victim.read_bytes())
    data[1000] ^= 0xFF
    victim.write_bytes(bytes(data))
    marker = "/var/lib/mcast-lab/steps/bundle"
    before = {h: _on(project, h, "sudo", "cat", marker).stdout for h in ("mcastsrc", "k8s")}
    refused = project.lab("up", "--bundle", str(corrupt), "--provider", "libvirt",
                          timeout=900)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert f"files.debs/{victim.name}" in refused.stderr and "is corrupt" in refused.stderr
    assert "send the bundle" not in refused.stderr  # refused before anything was sent
    assert {h: _on(project, h, "sudo", "cat", marker).stdout
            for h in ("mcastsrc", "k8s")} == before

    # What the iperf step installs, taken away on both VMs: it runs again, from the bundle.
    for host, packages in (("mcastsrc", ["tcpdump"]), ("k8s", ["iperf", "tcpdump"])):
        gone = _on(project, host, "sudo", "sh", "-c", f"dpkg -r {' '.join(packages)} && "
                   "rm -f /var/lib/mcast-lab/steps/iperf")
        assert gone.returncode == 0, gone.stderr
    start = time.monotonic()
    up = project.lab("up", "--bundle", str(bundle), "--provider", "libvirt", timeout=1200)
    print(f"\nlab up --bundle (send, check, index, reinstall): {time.monotonic() - start:.1f} s")
    assert up.returncode == 0, up.stdout + up.stderr
    assert "send the bundle (" in up.stderr
    for host in ("mcastsrc", "k8s"):
        assert f"{host}: bundle done" in up.stderr and f"{host}: iperf done" in up.stderr
        assert _versions(project, host, "iperf", "tcpdump") == {
            p: versions[p] for p in ("iperf", "tcpdump")}
    log = (project.dir / ".lab" / project.name / "logs" / "k8s" / "bundle.log").read_text()
    assert f"bundle for bookworm/amd64: {len(versions)} packages" in log

    # The Kubernetes tier's containerd step and the CNI plugins, from the same bundle.
    env = {"LAB_BUNDLE": "/var/lib/mcast-lab/bundle",
           "LAB_PAUSE_IMAGE": "registry.k8s.io/pause:3.10.2"}
    containerd = _step_on_node(project, "containerd.sh", env, {})
    assert containerd.returncode == 0, containerd.stdout + containerd.stderr
    cni = _lib_on_node(project, "lab_apt_update >/dev/null && "
                       "lab_apt_install containernetworking-plugins >/dev/null", env)
    assert cni.returncode == 0, cni.stdout + cni.stderr
    assert _versions(project, "k8s", "containerd", "runc", "containernetworking-plugins") \
        == {p: versions[p] for p in ("containerd", "runc", "containernetworking-plugins")}
    active = _on(project, "k8s", "sudo", "systemctl", "is-active", "containerd")  # no D-Bus: root
    assert active.stdout.strip() == "active", active.stdout + active.stderr
    assert _on(project, "k8s", "test", "-x", "/usr/lib/cni/macvlan").returncode == 0


def test_a_bundle_gathered_from_the_lab_carries_its_images_and_downloads(
        vm_lab: Project, tmp_path: Path) -> None:
    """`lab bundle` from a lab that is up: what the steps fetched (lab_fetch keeps a copy)
    and the node's images (exported by containerd) come back to this machine, and a node
    given that bundle imports the image again. Runs after the test above, which left
    containerd and busybox-static (from that bundle) on the node."""
    project = vm_lab
    env = {"LAB_BUNDLE": "/var/lib/mcast-lab/bundle", "LAB_RECEIVER_IMAGE":
           "mcast-lab/iperf:node", "LAB_STATE_DIR": "/var/lib/mcast-lab"}
    built = _step_on_node(project, "receiver-image.sh", env, {})
    assert built.returncode == 0, built.stdout + built.stderr
    # A download as the steps make them (file:// here: the VMs reach no web server), with
    # curl from the bundle (the box has none).
    curl = _lib_on_node(project, "lab_apt_update >/dev/null && lab_apt_install curl "
                        ">/dev/null", {"LAB_BUNDLE": "/var/lib/mcast-lab/bundle"})
    assert curl.returncode == 0, curl.stdout + curl.stderr
    fetched = _lib_on_node(project, "lab_fetch file:///etc/os-release /tmp/os-release",
                           {"LAB_STATE_DIR": "/var/lib/mcast-lab"})
    assert fetched.returncode == 0, fetched.stdout + fetched.stderr
    out = tmp_path / "from-lab"
    made = project.lab("bundle", "--no-apt", "--no-box", "--out", str(out), timeout=1200)
    assert made.returncode == 0, made.stdout + made.stderr
    manifest = yaml.safe_load((out / "bundle.yaml").read_text())
    assert manifest["release"] == "bookworm"
    (image,) = [f for f in manifest["files"] if f.startswith("images/")]
    assert image == "images/docker.io_mcast-lab_iperf_node.tar"  # as containerd names it
    copy = manifest["downloads"]["file:///etc/os-release"]
    real = _on(project, "k8s", "cat", "/etc/os-release").stdout
    assert (out / copy).read_text() == real
    # The image back into a node that lost it, from that bundle.
    gone = _on(project, "k8s", "sudo", "ctr", "-n", "k8s.io", "images", "rm",
               "docker.io/mcast-lab/iperf:node")
    assert gone.returncode == 0, gone.stderr
    up = project.lab("up", "--bundle", str(out), "--provider", "libvirt", timeout=900)
    assert up.returncode == 0, up.stdout + up.stderr
    imported = _lib_on_node(project, "lab_bundle_images && ctr -n k8s.io images ls -q",
                            {"LAB_BUNDLE": "/var/lib/mcast-lab/bundle"})
    assert imported.returncode == 0, imported.stdout + imported.stderr
    assert "docker.io/mcast-lab/iperf:node" in imported.stdout.split()


def test_snapshot_then_reset_undoes_a_change_and_the_lab_passes(vm_lab: Project) -> None:
    project = vm_lab
    start = time.monotonic()
    saved = project.lab("snapshot", "save", timeout=900)
    TIMES["snapshot save"] = time.monotonic() - start
    assert saved.returncode == 0, saved.stdout + saved.stderr
    # An attendee breaks the node: a file where it should not be, the lab NIC down.
    broke = _on(project, "k8s", "sudo", "sh", "-c",
                "touch /root/attendee-was-here && ip link set eth1 down")
    assert broke.returncode == 0, broke.stderr
    failed = project.lab("run", "host-baseline", timeout=300)
    assert failed.returncode != 0  # the lab is really broken
    start = time.monotonic()
    reset = project.lab("reset", timeout=900)
    TIMES["reset"] = time.monotonic() - start
    assert reset.returncode == 0, reset.stdout + reset.stderr
    assert "reset to snapshot ready in" in reset.stderr
    print(f"\nsnapshot save {TIMES['snapshot save']:.1f} s; lab reset {TIMES['reset']:.1f} s"
          f"; the first lab up took {TIMES.get('lab up', float('nan')):.1f} s")
    assert _on(project, "k8s", "test", "-e", "/root/attendee-was-here").returncode == 1
    run = project.lab("run", "host-baseline", timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    summary = json.loads(sorted((project.dir / "results").glob("*/summary.json"))[-1]
                         .read_text())
    (case,) = summary["scenarios"]
    assert case["verdict"] == "pass" and case["receivers"][0]["received"] == case["sent"]
    listed = project.lab("snapshot", "list", timeout=120).stdout
    assert listed.startswith("ready\t")
    deleted = project.lab("snapshot", "delete", "ready", timeout=600)
    assert deleted.returncode == 0, deleted.stdout + deleted.stderr
    assert "has no snapshot" in project.lab("snapshot", "list", timeout=120).stdout


def test_destroy_leaves_no_domain_and_no_network(vm_lab: Project) -> None:
    own = vm_lab.dir / ".lab" / vm_lab.name
    assert (own / "logs" / "k8s").is_dir()  # the provisioning logs, until destroy
    destroy = vm_lab.lab("destroy", timeout=900)
    assert destroy.returncode == 0, destroy.stdout + destroy.stderr
    assert _domains(vm_lab.name) == []
    assert _networks(vm_lab.name) == []
    assert not (own / "logs").exists() and not (own / "state.json").exists()
    assert not (own / "vagrant.json").exists()
