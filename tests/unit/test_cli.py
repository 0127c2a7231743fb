"""The CLI called in-process (lab.cli.main), for what needs no root."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from lab.cli import main
from tests.conftest import base_lab


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


def test_results_without_runs_is_a_usage_error(lab_file: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["results"]) == 2
    assert "no runs in" in capsys.readouterr().err


def test_unknown_option_is_exit_2(lab_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["up", "--no-such-flag"]) == 2
    assert main(["--backend", "docker", "up"]) == 2


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
