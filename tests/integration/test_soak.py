"""Soak: 50 cycles of up, the three seed scenarios (1 s each), destroy, in one process.
Every verdict must be right, and nothing may leak: namespaces, links in the machine's own
namespace, host-local state, iperf processes, this process's file descriptors."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import yaml

from lab.backends.netns import NetnsBackend
from lab.labfile import load_lab
from lab.results import RunArtifacts
from lab.runner import run_case
from lab.scenario import resolve_scenarios
from lab.state import State
from lab.ui import Reporter
from tests.conftest import make_project

pytestmark = [pytest.mark.netns,
              pytest.mark.skipif(os.geteuid() != 0, reason="needs root for namespaces")]

CYCLES = int(os.environ.get("LAB_SOAK_CYCLES", "50"))


def _snapshot(prefix: str) -> dict[str, object]:
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    procs = subprocess.run(["ps", "-eo", "comm"], capture_output=True, text=True).stdout
    cni = Path("/var/lib/cni")
    return {"namespaces": sorted(n.split()[0] for n in netns.splitlines()
                                 if n.startswith(prefix)),
            "links": len(links.splitlines()),
            "cni": sorted(str(p) for p in cni.rglob("*")) if cni.exists() else [],
            "iperf": procs.split().count("iperf"),
            "fds": len(os.listdir("/proc/self/fd"))}


def test_fifty_cycles(tmp_path: Path) -> None:
    project = make_project(tmp_path / "soak")
    for name in ("host-baseline", "pod-multus", "pod-without-multus"):
        path = project.dir / "scenarios" / f"{name}.yaml"
        data = yaml.safe_load(path.read_text())
        data["duration"] = 1
        path.write_text(yaml.safe_dump(data))
    lab = load_lab(project.lab_file)
    scenarios = resolve_scenarios(["host-baseline", "pod-multus", "pod-without-multus"], lab)
    quiet = Reporter(quiet=True)
    before = _snapshot(project.name)
    for cycle in range(CYCLES):
        backend = NetnsBackend(lab, State(project.dir / ".lab" / "state.json"), quiet)
        backend.up()
        artifacts = RunArtifacts(project.dir / "results", f"c{cycle}", {})
        try:
            outcomes = [run_case(s.cases()[0], backend, artifacts, quiet) for s in scenarios]
        finally:
            artifacts.finish("complete")
            backend.destroy()
        got = [(o["verdict"], o["receivers"][0]["received"] == o["sent"],
                o["receivers"][0]["received"]) for o in outcomes]
        assert got[0][:2] == ("pass", True) and got[1][:2] == ("pass", True), (cycle, got)
        assert got[2][0] == "pass" and got[2][2] == 0, (cycle, got)
    after = _snapshot(project.name)
    assert after == before
    assert len(list((project.dir / "results").glob("[0-9]*"))) == CYCLES
