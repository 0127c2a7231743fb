"""The CLI called in-process (lab.cli.main), for what needs no root."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from lab.cli import main
from lab.ui import Reporter
from tests.support import REPO, base_lab


@pytest.fixture
def lab_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "lab.yaml"
    path.write_text(yaml.safe_dump(base_lab()))
    return path


def test_status_of_a_lab_never_brought_up(lab_file: Path, capsys: pytest.CaptureFixture[str]
                                          ) -> None:
    assert main(["status", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["state"] == "down" and data["backend"] == "netns"
    assert [h["state"] for h in data["hosts"]] == ["not created", "not created"]


def test_backend_auto_on_the_command_line_overrides_the_lab_file(
        lab_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = yaml.safe_load(lab_file.read_text())
    data["backend"] = "vagrant"
    lab_file.write_text(yaml.safe_dump(data))
    assert main(["--backend", "auto", "status", "--json"]) == 0
    chosen = json.loads(capsys.readouterr().out)["backend"]
    assert chosen == ("netns" if os.geteuid() == 0 or shutil.which("sudo") else "vagrant")


def test_results_without_runs_is_a_usage_error(lab_file: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["results"]) == 2
    assert "no runs in" in capsys.readouterr().err


def test_unknown_option_is_exit_2(lab_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["up", "--no-such-flag"]) == 2
    err = capsys.readouterr().err
    assert err == "lab: No such option '--no-such-flag'.\n", err
    assert main(["--backend", "docker", "up"]) == 2
    err = capsys.readouterr().err
    assert "'docker' is not one of 'netns', 'vagrant'" in err, err
    assert not (lab_file.parent / ".lab").exists()  # refused before anything was made


@pytest.mark.skipif(shutil.which("vagrant") is None, reason="vagrant not installed")
def test_doctor_without_virtualbox_says_so_and_up_refuses(
        lab_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    if shutil.which("VBoxManage"):
        pytest.skip("VirtualBox is installed here")
    assert main(["--backend", "vagrant", "doctor", "--json"]) == 3
    checks = {c["name"]: c for c in json.loads(capsys.readouterr().out)}
    assert checks["vagrant"]["ok"] is True
    assert checks["virtualbox"]["ok"] is False
    assert "install VirtualBox" in checks["virtualbox"]["fix"]
    assert main(["up", "--backend", "vagrant"]) == 3
    err = capsys.readouterr().err
    assert "not ready for the vagrant backend" in err and "VirtualBox is not installed" in err
    assert not (lab_file.parent / ".lab" / "vagrant.json").exists()  # nothing created


def test_doctor_flags_a_subnet_virtualbox_refuses(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    data = base_lab()
    data["network"]["subnet"] = "10.0.0.0/24"
    for i, h in enumerate(data["hosts"]):
        h["address"] = f"10.0.0.{11 + i}"
    data["attachment"]["range"] = {"start": "10.0.0.13", "end": "10.0.0.254"}
    (tmp_path / "lab.yaml").write_text(yaml.safe_dump(data))
    main(["--backend", "vagrant", "doctor", "--json"])
    checks = {c["name"]: c for c in json.loads(capsys.readouterr().out)}
    assert checks["vbox-host-only"]["ok"] is False
    assert "* 10.0.0.0/24" in checks["vbox-host-only"]["fix"]


def test_doctor_json_and_provider_have_help(lab_file: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["doctor", "--help"]) == 0
    text = capsys.readouterr().out
    assert "--json" in text and "JSON list" in text
    assert "--provider [virtualbox|libvirt]" in text


def test_doctor_provider_is_a_vagrant_option(lab_file: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["doctor", "--provider", "libvirt"]) == 2  # the lab file's backend is netns
    assert "--backend vagrant" in capsys.readouterr().err


@pytest.mark.skipif(shutil.which("vagrant") is None, reason="vagrant not installed")
def test_doctor_checks_the_provider_it_is_given(lab_file: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    """`lab doctor` tells a libvirt user to use --provider libvirt: that option exists and
    switches the checks from VirtualBox to libvirt."""
    main(["--backend", "vagrant", "doctor", "--json", "--provider", "libvirt"])
    names = {c["name"] for c in json.loads(capsys.readouterr().out)}
    assert "virtualbox" not in names and "vbox-host-only" not in names, names
    assert any("libvirt" in n for n in names), names


def test_results_takes_no_backend_option(lab_file: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["results", "--backend", "netns"]) == 2
    assert "No such option '--backend'" in capsys.readouterr().err
    assert main(["manifests", "--backend", "netns"]) == 2


def test_scenarios_lists_each_file_with_its_description(
        lab_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shutil.copytree(REPO / "scenarios", lab_file.parent / "scenarios")
    assert main(["scenarios"]) == 0
    out = capsys.readouterr().out
    for path in sorted((REPO / "scenarios").glob("*.yaml")):
        data = yaml.safe_load(path.read_text())
        assert data["name"] in out
        assert data["description"].split()[0] in out
    assert "16 receiver(s)" in out and "100Mbit/s" in out


def test_scenarios_flags_an_invalid_file(lab_file: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    folder = lab_file.parent / "scenarios"
    shutil.copytree(REPO / "scenarios", folder)
    (folder / "broken.yaml").write_text("name: broken\ngroup: 10.1.1.1\n")
    assert main(["scenarios"]) == 2
    out = capsys.readouterr().out
    assert "broken" in out and "invalid" in out and "pod-multus" in out


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_destroy_recovers_runs_left_by_a_killed_lab_run(
        lab_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`kill -9` of `lab run` leaves results/.tmp-<run>-<pid>/: the next `lab destroy` (or
    `lab run`) keeps it as an interrupted run when it holds results, removes it when it
    holds nothing, says which, and leaves the folder of a run that still lives alone."""
    results = lab_file.parent / "results"
    dead = _dead_pid()
    kept = results / f".tmp-20261129-010000-pod-multus-{dead}"
    (kept / "raw" / "pod-multus").mkdir(parents=True)
    (kept / "raw" / "pod-multus" / "sender.txt").write_text("Sent 451 datagrams\n")
    case = {"name": "host-baseline", "scenario": "host-baseline", "file": "s.yaml",
            "verdict": "pass", "error": None, "group": "224.0.67.67", "rate_bps": 1050000,
            "duration_s": 5, "sent": 450, "elapsed_s": 6.2, "receivers": []}
    (kept / "summary.json").write_text(json.dumps(
        {"schema": 1, "run": "20261129-010000-pod-multus", "lab": "t", "backend": "netns",
         "lab_file": "lab.yaml", "started": "2026-11-29T01:00:00+00:00", "finished": None,
         "status": "running", "verdict": "pass", "scenarios": [case]}))
    empty = results / f".tmp-20261129-020000-run-{dead}"
    (empty / "resolved").mkdir(parents=True)
    alive = results / f".tmp-20261129-030000-run-{os.getpid()}"
    alive.mkdir()
    assert main(["destroy"]) == 0
    err = capsys.readouterr().err
    target = results / "20261129-010000-pod-multus"
    summary = json.loads((target / "summary.json").read_text())
    assert summary["status"] == "interrupted" and summary["verdict"] == "error"
    assert summary["scenarios"] == [case]
    assert (target / "verdict").read_text() == "error\n"
    assert (target / "raw" / "pod-multus" / "sender.txt").exists()
    assert not kept.exists() and not empty.exists()
    assert alive.exists()  # its process (this one) still runs
    assert f"kept {target}" in err and "removed" in err and str(empty) in err
    # `lab results` shows the recovered run as the last one.
    assert main(["results", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["status"] == "interrupted"


def test_a_killed_runs_summary_this_lab_cannot_read_is_kept_not_overwritten(
        lab_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    results = lab_file.parent / "results"
    kept = results / f".tmp-20261129-010000-pod-multus-{_dead_pid()}"
    (kept / "raw").mkdir(parents=True)
    (kept / "raw" / "sender.txt").write_text("Sent 451 datagrams\n")
    odd = json.dumps({"run": "x", "scenarios": [{"name": "half a case"}]})
    (kept / "summary.json").write_text(odd)
    assert main(["destroy"]) == 0
    target = results / "20261129-010000-pod-multus"
    assert (target / "summary-unreadable.json").read_text() == odd
    summary = json.loads((target / "summary.json").read_text())
    assert (summary["schema"], summary["status"], summary["verdict"]) == \
        (1, "interrupted", "error")


def test_up_refuses_an_option_its_backend_does_not_take(lab_file: Path,
                                                        capsys: pytest.CaptureFixture[str]
                                                        ) -> None:
    assert main(["up", "--provider", "libvirt"]) == 2  # the lab file's backend is netns
    assert "--provider is a vagrant option; the backend here is netns" in \
        capsys.readouterr().err
    assert not (lab_file.parent / ".lab" / "mcast" / "state.json").exists()


def test_the_registry_is_the_one_list_of_backends(lab_file: Path) -> None:
    """Every backend the registry names is made by that name, checks the machine, and is
    what the lab file and --backend accept; there is no other list."""
    import importlib

    from lab import backends, registry
    from lab.cli import cli
    from lab.model.labfile import load_lab
    from lab.state import State

    lab = load_lab(lab_file)
    for entry in registry.BACKENDS:
        package = importlib.import_module(entry.package)
        made = backends.make(entry.name, lab, State(lab_file.parent / "s.json"),
                             Reporter(quiet=True))
        assert made.name == entry.name and isinstance(made, package.BACKEND)
        assert callable(package.checks)
    backend_option = next(p for p in cli.params if p.name == "backend")
    assert tuple(backend_option.type.choices) == (  # type: ignore[attr-defined]
        *registry.NAMES, registry.AUTO)
