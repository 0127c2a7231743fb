"""Behaviours that had no test: each test here fails when its behaviour breaks. Real
namespaces, CNI plugins and iperf2; short (1-2 s) sends."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.observe import udp_datagrams_in, wait_for
from tests.integration.test_netns_lab import assert_clean, summary
from tests.support import REPO, Project, make_project

pytestmark = [pytest.mark.netns,
              pytest.mark.skipif(os.geteuid() != 0, reason="needs root for namespaces")]


def _scenario(project: Project, name: str, **changes: Any) -> Path:
    """A copy of a shipped scenario, shortened (1 s) and changed, in the project."""
    data = yaml.safe_load((REPO / "scenarios" / f"{changes.pop('base', name)}.yaml")
                          .read_text())
    data.update({"name": name, "duration": 1, **changes})
    path = project.dir / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _path_without(tool: str, tmp: Path) -> str:
    """A PATH of symlinks to every program on the PATH but `tool`."""
    bindir = tmp / f"path-without-{tool}"
    bindir.mkdir()
    for folder in os.environ["PATH"].split(os.pathsep):
        if not os.path.isdir(folder):
            continue
        for entry in os.listdir(folder):
            link = bindir / entry
            if entry != tool and not link.exists():
                link.symlink_to(os.path.join(folder, entry))
    return str(bindir)


def test_results_of_a_given_run_as_table_and_json(project: Project) -> None:
    project.lab("up", check_codes=(0,))
    path = _scenario(project, "hb", base="host-baseline")
    project.lab("run", str(path), check_codes=(0,))
    first = sorted((project.dir / "results").glob("[0-9]*"))[-1]
    project.lab("run", str(_scenario(project, "neg", base="pod-without-multus")),
                check_codes=(0,))
    shown = project.lab("results", str(first), check_codes=(0,)).stdout
    assert "hb" in shown and "neg" not in shown and "PASS" in shown  # that run, not the last
    as_json = json.loads(project.lab("results", str(first), "--json", check_codes=(0,)).stdout)
    assert as_json == json.loads((first / "summary.json").read_text())
    assert project.lab("results", str(project.dir / "nowhere")).returncode == 2


def test_status_table_names_hosts_state_and_addresses(project: Project) -> None:
    down = project.lab("status", check_codes=(0,)).stdout
    assert f"lab {project.name} (netns): down" in down and "not created" in down
    project.lab("up", check_codes=(0,))
    up = project.lab("status", check_codes=(0,)).stdout
    assert f"lab {project.name} (netns): up" in up
    for host, address in (("mcastsrc", "192.168.56.12"), ("k8s", "192.168.56.11")):
        row = next(line for line in up.splitlines() if f" {host} " in line)
        assert "running" in row and address in row and f"{project.name}-{host}" in row


def test_doctor_for_netns_passes_here_and_names_a_missing_tool(project: Project,
                                                               tmp_path: Path) -> None:
    ok = project.lab("doctor", "--json", check_codes=(0,))
    checks = {c["name"]: c for c in json.loads(ok.stdout)}
    assert {"root", "ip", "iperf", "iperf2", "timeout", "cni-plugins"} <= set(checks)
    assert all(c["ok"] for c in checks.values()), checks
    env = {**os.environ, "PATH": _path_without("iperf", tmp_path), "COLUMNS": "150"}
    missing = subprocess.run([sys.executable, "-m", "lab", "-f", str(project.lab_file),
                              "doctor"], capture_output=True, text=True, timeout=60, env=env)
    assert missing.returncode == 3, missing.stdout + missing.stderr
    assert "iperf is not installed" in missing.stdout
    assert "apt-get install iperf" in missing.stdout


def test_a_lab_up_with_one_backend_refuses_another(project: Project) -> None:
    project.lab("up", check_codes=(0,))
    proc = project.lab("--backend", "vagrant", "status", check_codes=(2,))
    assert "is up with the netns backend" in proc.stderr
    assert "lab destroy" in proc.stderr
    proc = project.lab("run", "--backend", "vagrant", "host-baseline", check_codes=(2,))
    assert not (project.dir / "results").exists()  # refused before anything ran


def test_run_without_arguments_runs_every_scenario_in_the_folder(tmp_path: Path) -> None:
    project = make_project(tmp_path / "proj")
    try:
        for old in (project.dir / "scenarios").glob("*.yaml"):
            old.unlink()
        for name, base in (("one", "host-baseline"), ("two", "pod-multus")):
            path = _scenario(project, name, base=base)
            path.rename(project.dir / "scenarios" / path.name)
        project.lab("up", check_codes=(0,))
        project.lab("run", check_codes=(0,))
        result = summary(project)
        assert [c["name"] for c in result["scenarios"]] == ["one", "two"]
        assert all(c["receivers"][0]["received"] == c["sent"] > 0
                   for c in result["scenarios"])
    finally:
        project.lab("destroy", timeout=120)
    assert_clean(project)


def test_a_rate_list_gives_one_verdict_per_rate(project: Project) -> None:
    project.lab("up", check_codes=(0,))
    path = _scenario(project, "sweep", base="rate-sweep", rate=["1M", "5M"])
    project.lab("run", str(path), check_codes=(0,))
    cases = {c["name"]: c for c in summary(project)["scenarios"]}
    assert sorted(cases) == ["sweep@1M", "sweep@5M"]
    assert [cases[n]["rate_bps"] for n in ("sweep@1M", "sweep@5M")] == [10**6, 5 * 10**6]
    # 1 s of 1470-byte datagrams: about 85 at 1 Mbit/s, about 425 at 5 Mbit/s.
    assert 70 <= cases["sweep@1M"]["sent"] <= 100, cases["sweep@1M"]
    assert 380 <= cases["sweep@5M"]["sent"] <= 460, cases["sweep@5M"]
    for case in cases.values():
        assert case["verdict"] == "pass"
        assert case["receivers"][0]["received"] >= case["sent"] * 0.99
    run_dir = sorted((project.dir / "results").glob("[0-9]*"))[-1]
    assert (run_dir / "raw" / "sweep@5M" / "pod-attached.csv").is_file()


def test_an_expectation_below_100_percent_is_applied(project: Project) -> None:
    """min_received_pct 50 passes a receiver that got everything and is shown; 100 % of a
    receiver whose pod gets nothing fails (the expectation is not ignored)."""
    project.lab("up", check_codes=(0,))
    half = _scenario(project, "half", base="host-baseline",
                     expect={"receive": True, "min_received_pct": 50})
    project.lab("run", str(half), check_codes=(0,))
    (case,) = summary(project)["scenarios"]
    assert case["receivers"][0]["expect"] == ">= 50 % received"
    assert case["verdict"] == "pass"
    wrong = _scenario(project, "wrong", base="pod-without-multus",
                      expect={"receive": True, "min_received_pct": 1})
    proc = project.lab("run", str(wrong), check_codes=(1,))
    (case,) = summary(project)["scenarios"]
    assert case["verdict"] == "fail" and case["receivers"][0]["expect"] == ">= 1 % received"
    assert "FAIL" in proc.stdout


def test_three_hosts_share_a_switch(tmp_path: Path) -> None:
    lab = yaml.safe_load((REPO / "lab.yaml").read_text())
    hosts = [*lab["hosts"], {"name": "src2", "role": "source", "address": "192.168.56.13"}]
    attachment = dict(lab["attachment"], range={"start": "192.168.56.20",
                                                "end": "192.168.56.254"})
    project = make_project(tmp_path / "proj", hosts=hosts, attachment=attachment)
    try:
        project.lab("up", check_codes=(0,))
        assert sorted(project.namespaces()) == sorted(
            f"{project.name}-{n}" for n in ("mcastsrc", "k8s", "src2", "lan"))
        path = _scenario(project, "from-src2", base="pod-multus", sender={"host": "src2"})
        project.lab("run", str(path), check_codes=(0,))
        (case,) = summary(project)["scenarios"]
        assert case["receivers"][0]["received"] == case["sent"] > 0
    finally:
        project.lab("destroy", timeout=120)
    assert_clean(project)


def test_a_receiver_that_cannot_start_is_an_error_naming_it(project: Project,
                                                             tmp_path: Path) -> None:
    """iperf missing where receivers run: the receiver exits before joining; the case is an
    error that says which receiver and what it printed, and nothing is left."""
    project.lab("up", check_codes=(0,))
    env = {**os.environ, "PATH": _path_without("iperf", tmp_path), "COLUMNS": "150"}
    proc = subprocess.run([sys.executable, "-m", "lab", "-f", str(project.lab_file), "run",
                           str(_scenario(project, "nope", base="host-baseline"))],
                          cwd=project.dir, capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    (case,) = summary(project)["scenarios"]
    assert case["verdict"] == "error"
    assert "receiver node-nic on k8s exited before joining 224.0.67.67" in case["error"]
    assert "iperf" in case["error"]
    project.lab("destroy", check_codes=(0,))
    assert_clean(project)


def test_a_receiver_on_a_missing_interface_says_so(project: Project) -> None:
    project.lab("up", check_codes=(0,))
    path = _scenario(project, "nonic", base="host-baseline",
                     receivers=[{"name": "ghost", "placement": "host", "host": "k8s",
                                 "iface": "nosuch0"}])
    project.lab("run", str(path), check_codes=(3,))
    (case,) = summary(project)["scenarios"]
    assert case["verdict"] == "error" and case["sent"] is None  # never sent
    assert "receiver ghost on k8s exited before joining 224.0.67.67 on nosuch0" \
        in case["error"], case["error"]
    assert "No such device" in case["error"], case["error"]
    project.lab("destroy", check_codes=(0,))
    assert_clean(project)


def test_a_receiver_that_never_joins_times_out(project: Project,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """A receiver process that runs but never joins (here `sleep`, in the lab's node
    namespace): the wait ends at its deadline with an error naming it."""
    from lab.backends.netns.host import NamespaceHost
    from lab.errors import BackendError
    from lab.model.scenario import Expectation, ReceiverSpec
    from lab.run import runner

    project.lab("up", check_codes=(0,))
    monkeypatch.setattr(runner, "JOIN_TIMEOUT_S", 1.0)
    host = NamespaceHost("k8s", f"{project.name}-k8s")
    spec = ReceiverSpec("mute", "host", "k8s", "eth1", 1, False, Expectation(True))
    ep = runner.Endpoint("mute", spec, host, "eth1", host.start(["sleep", "30"], timeout=30))
    try:
        with pytest.raises(BackendError, match=r"did not join 224.0.67.67 within 1 s:\n"
                                               r"  - mute on k8s \(eth1\)"):
            runner._wait_joined([ep], "224.0.67.67")
    finally:
        assert ep.process is not None
        ep.process.stop()
    project.lab("destroy", check_codes=(0,))
    assert_clean(project)


def test_sigint_during_run_stops_everything_and_keeps_results(project: Project) -> None:
    project.lab("up", check_codes=(0,))
    path = _scenario(project, "long", base="pod-multus", duration=10)
    proc = subprocess.Popen([sys.executable, "-m", "lab", "-q", "-f", str(project.lab_file),
                             "run", str(path)], cwd=project.dir, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    wait_for(lambda: udp_datagrams_in(f"{project.name}-pod-pod-attached") >= 50,
             "the pod receives datagrams")
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 3, (out, err)
    assert "lab: interrupted (SIGINT)" in err and "Traceback" not in err
    result = summary(project)
    assert result["status"] == "interrupted"
    (case,) = result["scenarios"]
    assert case["verdict"] == "error" and "SIGINT" in case["error"]
    assert 50 <= case["receivers"][0]["received"] < 900  # part of a 10 s stream
    assert len(project.namespaces()) == 2  # the pod is gone, the hosts stay
    project.lab("destroy", check_codes=(0,))
    assert_clean(project)
