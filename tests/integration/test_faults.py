"""Faults during runs, on real namespaces: each ends with a clear verdict or error (exit 1
or 3), keeps the results gathered so far, and `lab destroy` leaves nothing behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.integration.observe import (
    Paused,
    iperf_pids,
    joined,
    pids_in,
    udp_datagrams_in,
    wait_for,
)
from tests.integration.test_netns_lab import assert_clean
from tests.support import Project

pytestmark = [pytest.mark.netns,
              pytest.mark.skipif(os.geteuid() != 0, reason="needs root for namespaces")]


def _start_run(project: Project, *scenarios: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "lab", "-q", "-f", str(project.lab_file),
                             "run", *scenarios], cwd=project.dir, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _summary(project: Project) -> dict:
    run = sorted((project.dir / "results").glob("[0-9]*"))[-1]
    return json.loads((run / "summary.json").read_text())


def test_receiver_killed_during_the_run(project: Project) -> None:
    project.lab("up", check_codes=(0,))
    proc = _start_run(project, "pod-multus")
    pod_ns = f"{project.name}-pod-pod-attached"
    # Killed once it has received part of the stream (the send lasts 5 s, ~450 datagrams).
    wait_for(lambda: udp_datagrams_in(pod_ns) >= 100, "the pod receives datagrams")
    os.kill(iperf_pids(pod_ns, "server")[0], signal.SIGKILL)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, out + err  # the expectation failed, clearly
    (case,) = _summary(project)["scenarios"]
    assert case["verdict"] == "fail"
    assert case["receivers"][0]["received"] < case["sent"]
    project.lab("destroy", check_codes=(0,))
    assert_clean(project)


def test_sender_killed_during_the_run(project: Project) -> None:
    project.lab("up", check_codes=(0,))
    proc = _start_run(project, "host-baseline")
    src_ns, node_ns = f"{project.name}-mcastsrc", f"{project.name}-k8s"
    pids = wait_for(lambda: iperf_pids(src_ns, "client"), "the sender runs")
    wait_for(lambda: udp_datagrams_in(node_ns) >= 50, "the node's receiver gets datagrams")
    os.kill(pids[0], signal.SIGKILL)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 3, out + err
    (case,) = _summary(project)["scenarios"]
    assert case["verdict"] == "error" and "sender" in case["error"]
    assert case["receivers"][0]["received"] >= 50  # what arrived before is kept
    assert case["receivers"][0]["verdict"] == "error"  # not judged against no count
    project.lab("destroy", check_codes=(0,))
    assert_clean(project)


def test_pod_deleted_under_the_lab_mid_stream(project: Project) -> None:
    """As Kubernetes deletes a pod: its processes end and its namespace goes, after the
    receiver joined and while the sender runs. The case fails (the pod got part of the
    stream only), results are kept, and the run's cleanup copes with the missing namespace."""
    project.lab("up", check_codes=(0,))
    proc = _start_run(project, "pod-multus")
    pod_ns = f"{project.name}-pod-pod-attached"
    wait_for(lambda: joined(pod_ns, "eth1", "224.0.67.67"), "the pod's receiver joined")
    wait_for(lambda: udp_datagrams_in(pod_ns) >= 50, "the pod receives datagrams")
    for pid in pids_in(pod_ns):
        os.kill(pid, signal.SIGKILL)
    subprocess.run(["ip", "netns", "delete", pod_ns], check=True, timeout=10)
    out, err = proc.communicate(timeout=90)
    assert proc.returncode == 1, out + err
    (case,) = _summary(project)["scenarios"]
    assert case["verdict"] == "fail", case
    # A receiver killed with SIGKILL loses the report lines it had buffered: what it got
    # is unknown, and it is counted as not received.
    assert case["receivers"][0]["received"] < case["sent"], case
    assert "Traceback" not in err
    project.lab("destroy", check_codes=(0,))
    assert_clean(project)


def test_cni_add_failure_is_an_error_and_cleans_up(project: Project) -> None:
    # An attachment range of two addresses, one held by a stale lease (as a crashed run of
    # another tool could leave): the second attached pod's ADD fails in host-local. (Two
    # pods in a range of one are refused before the run, by the scenario's validation.)
    data = yaml.safe_load(project.lab_file.read_text())
    data["attachment"]["range"] = {"start": "192.168.56.13", "end": "192.168.56.14"}
    project.lab_file.write_text(yaml.safe_dump(data))
    two = yaml.safe_load((project.dir / "scenarios" / "fanout.yaml").read_text())
    two["receivers"][0]["count"] = 2
    two["duration"] = 1
    (project.dir / "two.yaml").write_text(yaml.safe_dump(two))
    project.lab("up", check_codes=(0,))
    store = Path(os.environ.get("LAB_CNI_DATA_DIR", "/var/lib/cni")) / \
        f"lab-{project.name}" / data["attachment"]["name"]
    store.mkdir(parents=True, exist_ok=True)
    (store / "192.168.56.14").write_text("stale-container\r\neth1")
    proc = project.lab("run", str(project.dir / "two.yaml"), check_codes=(3,))
    (case,) = _summary(project)["scenarios"]
    assert case["verdict"] == "error" and "CNI ADD" in case["error"], case["error"]
    assert "no IP addresses available in range set" in case["error"], case["error"]
    assert "ERROR" in proc.stdout
    assert len(project.namespaces()) == 2  # the half-made pods are gone
    project.lab("destroy", check_codes=(0,))
    assert_clean(project)


def _half_made(project: Project) -> Paused:
    """`lab up` held after it made the host namespaces and before it wired them."""
    paused = Paused(project, "netns-up-hosts", "up")
    paused.wait()
    state = json.loads((project.dir / ".lab" / project.name / "state.json").read_text())
    assert state["status"] == "creating" and len(state["namespaces"]) == 2, state
    assert len(project.namespaces()) == 2
    return paused


@pytest.mark.parametrize("then", ["destroy", "up"])
def test_kill_9_during_up_leaves_a_lab_that_destroy_or_up_finishes(
        project: Project, then: str) -> None:
    paused = _half_made(project)
    paused.proc.kill()
    paused.proc.communicate(timeout=10)
    paused.release()
    status = json.loads(project.lab("status", "--json", check_codes=(0,)).stdout)
    assert status["state"] != "up", status  # half made, and said so
    if then == "up":
        # A second `up` on a half-made lab starts again from nothing and finishes.
        project.lab("up", check_codes=(0,))
        status = json.loads(project.lab("status", "--json", check_codes=(0,)).stdout)
        assert status["state"] == "up", status
        project.lab("run", "host-baseline", check_codes=(0,))
    project.lab("destroy", check_codes=(0,))
    assert_clean(project)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_during_up_removes_what_it_made(project: Project, sig: signal.Signals) -> None:
    """A signal in the middle of `up` (namespaces made, not wired): exit 3 with a message,
    and `up` removes what it made: no half-made lab is left behind."""
    paused = _half_made(project)
    paused.proc.send_signal(sig)
    code, out, err = paused.finish(timeout=30)
    assert code == 3, (code, out, err)
    assert "interrupted" in err and "Traceback" not in err, err
    assert "removing what it created" in err
    assert project.namespaces() == []
    status = json.loads(project.lab("status", "--json", check_codes=(0,)).stdout)
    assert status["state"] == "down", status
    project.lab("destroy", check_codes=(0,))
    assert_clean(project)


def test_existing_namespaces_with_the_labs_names_are_refused(project: Project) -> None:
    """Namespaces that carry this lab's names but that this lab did not record (another
    lab of the same name) are never adopted nor deleted."""
    foreign = f"{project.name}-k8s"
    subprocess.run(["ip", "netns", "add", foreign], check=True, timeout=10)
    try:
        proc = project.lab("up", check_codes=(3,))
        assert foreign in proc.stderr and "already exist" in proc.stderr, proc.stderr
        assert project.namespaces() == [foreign]  # nothing made, the foreign one kept
        project.lab("destroy", check_codes=(0,))
        assert project.namespaces() == [foreign]  # destroy leaves what is not the lab's
    finally:
        subprocess.run(["ip", "netns", "delete", foreign], timeout=10)
    assert_clean(project)
