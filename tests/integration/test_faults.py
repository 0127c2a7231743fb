"""Faults during runs, on real namespaces: each ends with a clear verdict or error (exit 1
or 3), keeps the results gathered so far, and `lab destroy` leaves nothing behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import Project
from tests.integration.test_netns_lab import assert_clean

pytestmark = [pytest.mark.netns,
              pytest.mark.skipif(os.geteuid() != 0, reason="needs root for namespaces")]


def _start_run(project: Project, *scenarios: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "lab", "-q", "-f", str(project.lab_file),
                             "run", *scenarios], cwd=project.dir, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _pids(netns: str) -> list[int]:
    out = subprocess.run(["ip", "netns", "pids", netns], capture_output=True, text=True,
                         timeout=10).stdout
    return [int(p) for p in out.split()]


def _iperf_pids(netns: str, role: str) -> list[int]:
    found = []
    for pid in _pids(netns):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if cmd and cmd[0] == b"iperf" and (b"-s" if role == "server" else b"-c") in cmd:
            found.append(pid)
    return found


def _wait_for(predicate, timeout: float = 20.0):  # noqa: ANN001, ANN202
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def _summary(project: Project) -> dict:
    run = sorted((project.dir / "results").glob("[0-9]*"))[-1]
    return json.loads((run / "summary.json").read_text())


def test_receiver_killed_during_the_run(project: Project) -> None:
    project.lab("up", check_codes=(0,))
    proc = _start_run(project, "pod-multus")
    pod_ns = f"{project.name}-pod-pod-attached"
    pids = _wait_for(lambda: _iperf_pids(pod_ns, "server") if os.path.exists(
        f"/var/run/netns/{pod_ns}") else [])
    time.sleep(2.0)  # some datagrams arrive first
    os.kill(pids[0], signal.SIGKILL)
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
    src_ns = f"{project.name}-mcastsrc"
    pids = _wait_for(lambda: _iperf_pids(src_ns, "client"))
    time.sleep(1.0)
    os.kill(pids[0], signal.SIGKILL)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 3, out + err
    (case,) = _summary(project)["scenarios"]
    assert case["verdict"] == "error" and "sender" in case["error"]
    assert case["receivers"][0]["received"] > 0  # what arrived before is kept
    project.lab("destroy", check_codes=(0,))
    assert_clean(project)


def test_pod_namespace_deleted_under_the_lab(project: Project) -> None:
    project.lab("up", check_codes=(0,))
    proc = _start_run(project, "pod-multus")
    pod_ns = f"{project.name}-pod-pod-attached"
    _wait_for(lambda: _iperf_pids(pod_ns, "server") if os.path.exists(
        f"/var/run/netns/{pod_ns}") else [])
    subprocess.run(["ip", "netns", "delete", pod_ns], check=True, timeout=10)
    out, err = proc.communicate(timeout=90)
    assert proc.returncode in (1, 3), out + err
    assert _summary(project)["scenarios"], "results were not kept"
    project.lab("destroy", check_codes=(0,))
    assert_clean(project)


def test_cni_add_failure_is_an_error_and_cleans_up(project: Project) -> None:
    # An attachment range of one address: the second attached pod's ADD fails in host-local.
    data = yaml.safe_load(project.lab_file.read_text())
    data["attachment"]["range"] = {"start": "192.168.56.13", "end": "192.168.56.13"}
    project.lab_file.write_text(yaml.safe_dump(data))
    two = yaml.safe_load((project.dir / "scenarios" / "fanout.yaml").read_text())
    two["receivers"][0]["count"] = 2
    two["duration"] = 1
    (project.dir / "two.yaml").write_text(yaml.safe_dump(two))
    project.lab("up", check_codes=(0,))
    proc = project.lab("run", str(project.dir / "two.yaml"), check_codes=(3,))
    (case,) = _summary(project)["scenarios"]
    assert case["verdict"] == "error" and "CNI ADD" in case["error"], case["error"]
    assert "no IP addresses available" in case["error"] or "range" in case["error"]
    assert "ERROR" in proc.stdout
    assert len(project.namespaces()) == 2  # the half-made pods are gone
    project.lab("destroy", check_codes=(0,))
    assert_clean(project)


def test_kill_9_during_up_then_destroy(project: Project) -> None:
    for delay in (0.25, 0.35, 0.45):
        proc = subprocess.Popen([sys.executable, "-m", "lab", "-q", "-f",
                                 str(project.lab_file), "up"], cwd=project.dir)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        project.lab("destroy", check_codes=(0,))
        assert_clean(project)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_during_up_then_destroy(project: Project, sig: signal.Signals) -> None:
    """`up` takes about 0.3 s: the signal lands at a few points; whatever the point, `up`
    ends 0 (done) or 3 (interrupted, with a message), or dies by the signal when it comes
    while Python itself starts (about 0.15-0.2 s here, before any code of lab runs) or
    exits; then the lab is either not there at all or wholly up, never half made. Then
    destroy leaves nothing."""
    for delay in (0.2, 0.3, 0.4):
        proc = subprocess.Popen([sys.executable, "-m", "lab", "-q", "-f",
                                 str(project.lab_file), "up"], cwd=project.dir,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(delay)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=30)
        assert proc.returncode in (0, 3, -sig), (proc.returncode, out, err)
        if proc.returncode == -sig:
            state = json.loads(project.lab("status", "--json", check_codes=(0,)).stdout)
            assert state["state"] in ("down", "up"), state
        if proc.returncode == 3:
            assert "interrupted" in err and "Traceback" not in err
        project.lab("destroy", check_codes=(0,))
        assert_clean(project)
