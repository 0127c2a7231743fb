"""Two `lab` commands at once: a busy lab refuses at once; two labs run side by side."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.integration.observe import Paused, lock_held
from tests.support import Project, base_lab, make_project

pytestmark = [pytest.mark.netns,
              pytest.mark.skipif(os.geteuid() != 0, reason="needs root for namespaces")]


def _background(project: Project, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "lab", "-q", "-f", str(project.lab_file),
                             *args], cwd=project.dir, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_a_busy_lab_refuses_a_second_command_at_once(project: Project) -> None:
    project.lab("up", check_codes=(0,))
    # The run is held after its receivers joined: it holds the lock, and keeps it until
    # released, however slow the machine.
    busy = Paused(project, "run-joined", "run", "host-baseline")
    try:
        busy.wait()
        assert "run host-baseline" in lock_held(project)
        start = time.monotonic()
        second = project.lab("destroy", timeout=30)
        assert time.monotonic() - start < 10
        assert second.returncode == 3 and "lab is busy" in second.stderr
        assert "run host-baseline" in second.stderr  # says who holds it
        assert len(project.namespaces()) == 2  # nothing was destroyed under the run
        # Reading is allowed while it runs.
        assert project.lab("status", "--json").returncode == 0
    finally:
        code, out, err = busy.finish(timeout=60)
    assert code == 0, out + err
    assert lock_held(project) == ""  # released when the run ended


def test_two_labs_side_by_side(tmp_path: Path) -> None:
    other = base_lab()
    other["network"]["subnet"] = "192.168.57.0/24"
    other["hosts"][0]["address"] = "192.168.57.12"
    other["hosts"][1]["address"] = "192.168.57.11"
    other["attachment"]["range"] = {"start": "192.168.57.13", "end": "192.168.57.254"}
    a = make_project(tmp_path / "a")
    b = make_project(tmp_path / "b", network=other["network"], hosts=other["hosts"],
                     attachment=other["attachment"])
    try:
        a.lab("up", check_codes=(0,))
        b.lab("up", check_codes=(0,))
        runs = [_background(p, "run", "pod-multus") for p in (a, b)]
        for proc in runs:
            out, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, out + err
        for p in (a, b):
            summary = json.loads(sorted((p.dir / "results").glob("[0-9]*"))[-1]
                                 .joinpath("summary.json").read_text())
            (case,) = summary["scenarios"]
            assert case["receivers"][0]["received"] == case["sent"] > 0
        a.lab("destroy", check_codes=(0,))
        assert a.namespaces() == [] and len(b.namespaces()) == 2  # b untouched
        status = json.loads(b.lab("status", "--json", check_codes=(0,)).stdout)
        assert status["state"] == "up"
    finally:
        a.lab("destroy", timeout=120)
        b.lab("destroy", timeout=120)
    assert b.namespaces() == []
