"""In-process twins of tests/unit/test_bad_input.py, for mutation testing (mutmut).

test_bad_input.py runs each malformed file through `python -m lab` in a subprocess, which
imports the installed, unmutated code, so none of its ~150 cases can kill a mutant. Here the
same inputs (its LAB_CASES and SCENARIO_CASES) go to lab.labfile.load_lab and
lab.scenario.resolve_scenarios directly, and the problems must read exactly as the golden
files the CLI is held to: `lab: invalid input:` followed by the ConfigError's lines.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from lab.errors import ConfigError
from lab.labfile import load_lab
from lab.scenario import resolve_scenarios
from tests.conftest import base_lab
from tests.unit.test_bad_input import (
    GOLDEN,
    LAB_CASES,
    SCENARIO_CASES,
    _write,
    base_scenario,
)


def _as_cli_prints(exc: ConfigError) -> str:
    return f"lab: invalid input:\n{exc}\n"


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)  # files are named relative to the working directory
    return tmp_path


@pytest.mark.parametrize("name", sorted(LAB_CASES))
def test_bad_lab_file_in_process(name: str, here: Path) -> None:
    _write(here / "lab.yaml", LAB_CASES[name], base_lab())
    with pytest.raises(ConfigError) as info:
        load_lab(Path("lab.yaml"))
    assert _as_cli_prints(info.value) == (GOLDEN / f"{name}.txt").read_text()


@pytest.mark.parametrize("name", sorted(SCENARIO_CASES))
def test_bad_scenario_file_in_process(name: str, here: Path) -> None:
    (here / "lab.yaml").write_text(yaml.safe_dump(base_lab()))
    lab = load_lab(Path("lab.yaml"))
    _write(here / "bad.yaml", SCENARIO_CASES[name], base_scenario())
    with pytest.raises(ConfigError) as info:
        resolve_scenarios(["bad.yaml"], lab)
    assert _as_cli_prints(info.value) == (GOLDEN / f"{name}.txt").read_text()


def test_missing_lab_file_in_process(here: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_lab(Path("nowhere.yaml"))
    assert _as_cli_prints(info.value) == (GOLDEN / "lab-missing-file.txt").read_text()


def test_missing_scenario_file_in_process(here: Path) -> None:
    (here / "lab.yaml").write_text(yaml.safe_dump(base_lab()))
    lab = load_lab(Path("lab.yaml"))
    with pytest.raises(ConfigError) as info:
        resolve_scenarios(["nosuch"], lab)
    assert _as_cli_prints(info.value) == (GOLDEN / "scn-missing-file.txt").read_text()


@pytest.mark.parametrize("kind", ["char-device", "fifo", "directory", "too-large"])
def test_a_path_that_is_not_a_small_regular_file_in_process(kind: str, here: Path) -> None:
    if kind == "char-device":
        target = Path("/dev/zero")
    elif kind == "fifo":
        target = here / "pipe.yaml"
        os.mkfifo(target)
    elif kind == "directory":
        target = here / "adir.yaml"
        target.mkdir()
    else:
        target = here / "big.yaml"
        target.write_text("# padding\n" * 200_000)  # 2,000,000 bytes
    with pytest.raises(ConfigError) as info:
        load_lab(target)
    message = {"char-device": "cannot read: not a regular file",
               "fifo": "cannot read: not a regular file",
               "directory": "cannot read: a directory",
               "too-large": "is 2000000 bytes; a lab or scenario file is at most 1048576 bytes",
               }[kind]
    assert str(info.value) == f"{os.path.relpath(target)}: {message}"
