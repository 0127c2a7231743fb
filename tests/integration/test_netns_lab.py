"""The netns backend end to end, on real namespaces, the real CNI plugins and real iperf2.

Needs root. Every assertion on traffic reads datagram counts from iperf's own reports
(summary.json and the raw CSV kept in the run folder).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.observe import iperf_pids, lab_processes, udp_datagrams_in, wait_for
from tests.support import Project, base_lab, make_project

pytestmark = [pytest.mark.netns,
              pytest.mark.skipif(os.geteuid() != 0, reason="needs root for namespaces")]


def summary(project: Project) -> dict:
    runs = sorted((project.dir / "results").glob("[0-9]*"))
    assert runs, "no run folder written"
    return json.loads((runs[-1] / "summary.json").read_text())


def leftovers(project: Project) -> dict[str, object]:
    ipam = Path("/var/lib/cni") / f"lab-{project.name}"
    return {
        "namespaces": project.namespaces(),
        "ipam": sorted(str(p) for p in ipam.rglob("*")) if ipam.exists() else [],
        # Every process the lab started in its namespaces (iperf under timeout), found by
        # the owner mark in its environment, also when its namespace is gone.
        "iperf": lab_processes(project.name),
        "state": (project.dir / ".lab" / project.name / "state.json").exists(),
    }


def assert_clean(project: Project) -> None:
    assert leftovers(project) == {"namespaces": [], "ipam": [], "iperf": [], "state": False}


def test_seed_scenarios_deliver_to_host_and_attached_pod_and_nothing_without(project):
    project.lab("up", check_codes=(0,))
    assert sorted(project.namespaces()) == sorted(f"{project.name}-{h}"
                                                  for h in ("mcastsrc", "k8s"))
    proc = project.lab("run", "host-baseline", "pod-multus", "pod-without-multus",
                       check_codes=(0,))
    result = summary(project)
    assert result["verdict"] == "pass" and result["status"] == "complete"
    by_name = {s["name"]: s for s in result["scenarios"]}
    for name in ("host-baseline", "pod-multus"):
        case = by_name[name]
        # 5 s at 1.05 Mbit/s of 1470-byte datagrams is about 449 datagrams.
        assert 440 <= case["sent"] <= 460, case
        (receiver,) = case["receivers"]
        assert receiver["received"] == case["sent"] and receiver["lost"] == 0
        assert receiver["complete"] is True
    assert by_name["host-baseline"]["receivers"][0]["placement"] == "host"
    assert by_name["pod-multus"]["receivers"][0]["placement"] == "pod"
    negative = by_name["pod-without-multus"]
    assert negative["sent"] >= 440
    assert negative["receivers"][0]["received"] == 0
    assert negative["receivers"][0]["iface"] == "eth0"
    # The raw reports are kept and agree with the summary.
    run_dir = sorted((project.dir / "results").glob("[0-9]*"))[-1]
    raw = (run_dir / "raw" / "pod-multus" / "pod-attached.csv").read_text()
    assert raw.strip().splitlines()[-1].split(",")[11] == str(by_name["pod-multus"]["sent"])
    assert (run_dir / "raw" / "pod-without-multus" / "pod-plain.csv").read_text() == ""
    assert "PASS" in proc.stdout and "pod-without-multus" in proc.stdout
    # Pods are gone after the run; the hosts stay until destroy.
    assert len(project.namespaces()) == 2
    project.lab("destroy", check_codes=(0,))
    assert_clean(project)
    project.lab("destroy", check_codes=(0,))  # idempotent


def test_fanout_sixteen_pods_all_receive_everything(project):
    project.lab("up", check_codes=(0,))
    proc = project.lab("run", "fanout", check_codes=(0,))
    # Progress after the send: the receivers' reports, counted as they are collected.
    assert "fanout: collect 16 receiver report(s): 16/16 receivers collected" in proc.stderr
    (case,) = summary(project)["scenarios"]
    assert len(case["receivers"]) == 16
    assert case["sent"] > 4000  # 5 s at 10 Mbit/s
    assert {r["received"] for r in case["receivers"]} == {case["sent"]}
    project.lab("destroy", check_codes=(0,))
    assert_clean(project)


def test_a_failed_expectation_exits_1_and_says_fail(project):
    # Expect the pod without the attachment to receive: it cannot, so the verdict is fail.
    scenario = project.dir / "scenarios" / "pod-without-multus.yaml"
    text = scenario.read_text().replace("expect: {receive: false}",
                                        "expect: {receive: true}")
    wrong = project.dir / "expects-wrongly.yaml"
    wrong.write_text(text.replace("name: pod-without-multus", "name: expects-wrongly")
                     .replace("duration: 5", "duration: 1"))
    project.lab("up", check_codes=(0,))
    proc = project.lab("run", str(wrong), check_codes=(1,))
    assert "FAIL" in proc.stdout
    (case,) = summary(project)["scenarios"]
    assert case["verdict"] == "fail" and case["receivers"][0]["received"] == 0


def test_status_json_and_results(project):
    down = json.loads(project.lab("status", "--json", check_codes=(0,)).stdout)
    assert down["state"] == "down"
    proc = project.lab("up", check_codes=(0,))
    # stderr is a pipe here: the hint must not be wrapped in the middle of a command.
    assert "`lab run`" in proc.stderr and "`lab destroy`" in proc.stderr, proc.stderr
    up = json.loads(project.lab("status", "--json", check_codes=(0,)).stdout)
    assert up["state"] == "up" and [h["state"] for h in up["hosts"]] == ["running"] * 2
    project.lab("up", check_codes=(0,))  # idempotent: a second up changes nothing
    assert len(project.namespaces()) == 2
    assert project.lab("results").returncode == 2  # no run yet
    project.lab("run", "host-baseline", check_codes=(0,))
    shown = project.lab("results", check_codes=(0,)).stdout
    assert "host-baseline" in shown and "PASS" in shown


def test_run_before_up_is_refused_and_creates_nothing(project):
    proc = project.lab("run", "host-baseline", check_codes=(2,))
    assert "lab up" in proc.stderr
    assert not (project.dir / "results").exists()
    assert project.namespaces() == []


def test_killed_lab_is_cleaned_up_by_destroy(project):
    project.lab("up", check_codes=(0,))
    proc = subprocess.Popen([sys.executable, "-m", "lab", "-f", str(project.lab_file), "-q",
                             "run", "fanout"], cwd=project.dir, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        # Killed while the sender runs: 16 pods exist and their receivers get data.
        wait_for(lambda: iperf_pids(f"{project.name}-mcastsrc", "client"), "the sender runs")
        wait_for(lambda: udp_datagrams_in(f"{project.name}-pod-fan-16") > 0,
                 "the last pod receives")
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(10)
    assert len(project.namespaces()) == 18  # left behind by the killed run
    # The leak check sees what the killed run left running: it can fail.
    assert len(lab_processes(project.name)) >= 16, lab_processes(project.name)
    assert len(list((project.dir / "results").glob(".tmp-*"))) == 1
    destroyed = project.lab("destroy", check_codes=(0,))
    assert_clean(project)
    # The killed run's hidden folder is not left for ever: destroy says what it did.
    assert list((project.dir / "results").glob(".tmp-*")) == []
    assert "unfinished run" in destroyed.stderr or "interrupted run" in destroyed.stderr


def test_sigterm_during_run_stops_everything_and_keeps_results(project):
    project.lab("up", check_codes=(0,))
    proc = subprocess.Popen([sys.executable, "-m", "lab", "-f", str(project.lab_file), "-q",
                             "run", "host-baseline", "pod-multus"], cwd=project.dir,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # The pod exists only in pod-multus (host-baseline is over then); it has got data.
    wait_for(lambda: udp_datagrams_in(f"{project.name}-pod-pod-attached") >= 50,
             "pod-multus's receiver gets datagrams")
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 3, (out, err)
    assert "interrupted" in err
    result = summary(project)
    assert result["status"] == "interrupted"
    assert [s["name"] for s in result["scenarios"]] == ["host-baseline", "pod-multus"]
    assert result["scenarios"][0]["verdict"] == "pass"
    assert result["scenarios"][0]["receivers"][0]["received"] == result["scenarios"][0]["sent"]
    interrupted = result["scenarios"][1]
    assert interrupted["verdict"] == "error" and "SIGTERM" in interrupted["error"]
    # What the pod received before the signal is kept: part of a 5 s stream.
    assert 0 < interrupted["receivers"][0]["received"] < 440
    # iperf printed a summary on SIGTERM; the stream did not end whole, and says so.
    assert interrupted["receivers"][0]["complete"] is False
    assert len(project.namespaces()) == 2  # the pod was removed; hosts remain
    assert leftovers(project)["iperf"] == []
    assert "Traceback" not in err


def test_lab_ssh_runs_a_command_on_a_host(project):
    project.lab("up", check_codes=(0,))
    proc = project.lab("ssh", "k8s", "--", "ip", "-o", "-4", "addr", "show", "dev", "eth1",
                       check_codes=(0,))
    assert "192.168.56.11/24" in proc.stdout
    assert project.lab("ssh", "nohost", "--", "true").returncode == 2


@pytest.mark.parametrize(("queue", "bclim"), [(None, None), (5000, None), (None, -1),
                                             (2000, 64)])
def test_attached_pod_gets_the_macvlan_port_settings_from_lab_yaml(tmp_path, queue, bclim):
    """`attachment.bcqueuelen` and `attachment.bclim` reach the node's macvlan port
    through the pod's macvlan, as the kernel reports them back (it ignores a setting it
    does not know rather than refuse it); unset, the kernel's 1000 and 1 stay."""
    from lab.backends.netns.backend import NetnsBackend
    from lab.backends.netns.netlink import Netlink
    from lab.host import PodSpec
    from lab.model.labfile import load_lab
    from lab.state import State
    from lab.ui import Reporter

    attachment = dict(base_lab()["attachment"])
    attachment.pop("bclim", None)  # lab.yaml's own is -1
    if queue is not None:
        attachment["bcqueuelen"] = queue
    if bclim is not None:
        attachment["bclim"] = bclim
    project = make_project(tmp_path / "proj", attachment=attachment)
    try:
        project.lab("up", check_codes=(0,))
        lab = load_lab(project.lab_file)
        assert (lab.attachment.bcqueuelen, lab.attachment.bclim) == (queue, bclim)
        backend = NetnsBackend(lab, State(project.dir / ".lab" / lab.name / "state.json"),
                               Reporter(quiet=True))
        (pod,) = backend.create_pods([PodSpec("q", True, "t", ("iperf", "-s"), 60)])
        try:
            details = pod.host.run(["ip", "-d", "link", "show", "eth1"], timeout=10).stdout
            assert "macvlan mode bridge" in details, details
            assert f"bcqueuelen {queue or 1000}" in details, details
            with Netlink(backend.pod_netns("q")) as link:
                port = link.macvlan("eth1")
            assert port["usedbcqueuelen"] == (queue or 1000), port
            assert port.get("bclim", 1) == (1 if bclim is None else bclim), port
        finally:
            backend.delete_pods([pod])
    finally:
        project.lab("destroy", timeout=120)
    assert_clean(project)


def test_lab_logs_gathers_the_hosts_and_never_key_material(project):
    """`lab logs` on a real netns lab: one archive with the lab file, the state, each
    host's links, addresses and memberships; Kubernetes parts say why they are absent; a
    key planted in the provisioning logs comes out as a removed line."""
    import tarfile

    assert project.lab("up").returncode == 0
    planted = project.dir / ".lab" / project.name / "logs" / "k8s" / "planted.log"
    planted.parent.mkdir(parents=True)
    planted.write_text("step ran\n-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXk\n"
                       "    client-key-data: LS0tLS1CRUdJTi\n-----END OPENSSH PRIVATE KEY-----\n")
    logs = project.lab("logs")
    assert logs.returncode == 0, logs.stderr
    archive = Path(logs.stdout.strip())
    assert archive.parent == project.dir / ".lab" / project.name and archive.is_file()
    with tarfile.open(archive) as tar:
        files = {m.name.split("/", 1)[1]: tar.extractfile(m).read().decode()  # type: ignore
                 for m in tar.getmembers() if m.isfile()}
    assert {"lab.yaml", "state.json", "MANIFEST.txt", "hosts/mcastsrc/ip-addr.txt",
            "hosts/k8s/igmp.txt", "hosts/k8s/kubernetes/nodes.txt",
            "provisioning-logs/k8s/planted.log"} <= set(files), sorted(files)
    assert "inet 192.168.56.12/24" in files["hosts/mcastsrc/ip-addr.txt"]
    assert files["hosts/mcastsrc/ip-addr.txt"].startswith(
        f"$ ip netns exec {project.name}-mcastsrc ip -d addr\n# exit status 0\n")
    assert "iperf version 2" in files["hosts/k8s/iperf-version.txt"]
    assert files["hosts/k8s/kubernetes/nodes.txt"] == "no Kubernetes with the netns backend\n"
    everything = "\n".join(files.values())
    assert "PRIVATE KEY" not in everything and "-data:" not in everything
    assert "step ran" in files["provisioning-logs/k8s/planted.log"]
    assert "line removed by lab logs" in files["provisioning-logs/k8s/planted.log"]
