"""Run artifact folders: `results/<run id>/`, written in a hidden folder and renamed into
place when the run ends (also when it fails or is interrupted), never overwritten.

Every path inside a run folder is made here:
  summary.json            the run's outcome (lab.run.outcome, schema 1)
  verdict                 pass / fail / error / none, one word
  resolved/<case>.yaml    the case as it ran (defaults filled in)
  raw/<case>/sender.txt   the sender's command, exit status and output
  raw/<case>/<member>.csv a receiver's iperf CSV (and .stderr when it said anything)
  raw/<case>/capture-<point>.pcap  what tcpdump saw at a capture point of the case
  lab.json                the lab the run ran on (hosts, addresses, the NAD), for reports
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from lab.command import Result
from lab.errors import UsageError
from lab.run.outcome import (
    SUMMARY,
    CaseOutcome,
    RunSummary,
    overall_verdict,
    read_summary,
    write_summary,
)

TMP_PREFIX = ".tmp-"
LAB_FILE = "lab.json"
UNREADABLE = "summary-unreadable.json"


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


class RunArtifacts:
    def __init__(self, results_dir: Path, label: str, meta: Mapping[str, str]) -> None:
        """`meta`: lab, backend, lab_file (each may be left out)."""
        unknown = set(meta) - {"lab", "backend", "lab_file"}
        if unknown:
            raise TypeError(f"unknown run metadata {sorted(unknown)}")
        self.results_dir = results_dir
        self.started = dt.datetime.now(dt.UTC)
        stamp = self.started.strftime("%Y%m%d-%H%M%S")
        results_dir.mkdir(parents=True, exist_ok=True)
        # A name no finished run and no run of this process in progress has (two runs in
        # one second and one process, as the soak makes); another process's run of the
        # same name is told apart by its pid until `finish` picks a free final name.
        base, n = f"{stamp}-{label}", 1
        while True:
            candidate = base if n == 1 else f"{base}-{n}"
            tmp = results_dir / f"{TMP_PREFIX}{candidate}-{os.getpid()}"
            if not (results_dir / candidate).exists():
                try:
                    tmp.mkdir()
                    break
                except FileExistsError:
                    pass
            n += 1
        self.run_id, self.tmp = candidate, tmp
        self.meta = dict(meta)
        self.cases: list[CaseOutcome] = []
        self.final: Path | None = None

    def write(self, relative: str, text: str) -> Path:
        path = self.tmp / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path

    def write_resolved(self, case_name: str, resolved: dict[str, Any]) -> None:
        self.write(f"resolved/{case_name}.yaml", yaml.safe_dump(resolved, sort_keys=False))

    def write_sender(self, case_name: str, result: Result) -> None:
        self.write(f"raw/{case_name}/sender.txt",
                   f"$ {result.shown}\n# exit status {result.exit_status}"
                   f"{' (timed out)' if result.timed_out else ''}\n"
                   + result.stdout + result.stderr)

    def write_receiver(self, case_name: str, member: str, result: Result) -> None:
        self.write(f"raw/{case_name}/{member}.csv", result.stdout)
        if result.stderr.strip():
            self.write(f"raw/{case_name}/{member}.stderr", result.stderr)

    def capture_file(self, case_name: str, point: str) -> tuple[Path, str]:
        """Where a capture of the case is kept: the path now, and the path in the run folder."""
        relative = f"raw/{case_name}/capture-{point}.pcap"
        return self.tmp / relative, relative

    def write_lab(self, lab: Mapping[str, Any]) -> None:
        self.write(LAB_FILE, json.dumps(lab, indent=2) + "\n")

    def add_case(self, case: CaseOutcome) -> None:
        self.cases.append(case)
        self._write_summary(final=False)  # what was gathered so far survives a crash

    def summary(self, status: str = "running", final: bool = False) -> RunSummary:
        return RunSummary(
            run=self.run_id, lab=self.meta.get("lab", ""),
            backend=self.meta.get("backend", ""), lab_file=self.meta.get("lab_file", ""),
            started=self.started.isoformat(timespec="seconds"),
            finished=_now() if final else None, status=status,
            verdict=overall_verdict(self.cases), scenarios=tuple(self.cases))

    def _write_summary(self, final: bool, status: str = "running") -> None:
        write_summary(self.tmp, self.summary(status, final))

    def finish(self, status: str) -> Path:
        """Write the final summary and move the folder into place; returns its path."""
        if self.final is not None:
            return self.final
        self._write_summary(final=True, status=status)
        self.write("verdict", overall_verdict(self.cases) + "\n")
        target = self.results_dir / _free_name(self.results_dir, self.run_id)
        os.rename(self.tmp, target)
        self.final = target
        return target


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def recover_unfinished(results_dir: Path) -> list[str]:
    """Hidden run folders left by a `lab run` that was killed (kill -9, power off): each is
    moved into place marked interrupted when it holds anything, else removed. Folders of a
    run whose process still lives are left alone. Returns one line per folder for the user.
    """
    if not results_dir.is_dir():
        return []
    said = []
    for tmp in sorted(results_dir.glob(f"{TMP_PREFIX}*")):
        run_id, _, pid = tmp.name[len(TMP_PREFIX):].rpartition("-")
        if not tmp.is_dir() or not pid.isdigit() or not run_id or _pid_alive(int(pid)):
            continue
        summary: RunSummary | None = None
        if (tmp / SUMMARY).is_file():
            try:
                summary = read_summary(tmp)
            except UsageError:
                # Not a summary this lab reads: kept beside the new one, never overwritten.
                os.replace(tmp / SUMMARY, tmp / UNREADABLE)
        cases = summary.scenarios if summary is not None else ()
        raw = [p for p in (tmp / "raw").rglob("*") if p.is_file()] \
            if (tmp / "raw").is_dir() else []
        if not cases and not raw:
            shutil.rmtree(tmp, ignore_errors=True)
            said.append(f"removed {tmp}: an unfinished run (process {pid} is gone) that "
                        "recorded nothing")
            continue
        # A run that never finished passed nothing whole: a failed case stays a failure,
        # anything else is an error.
        verdict = "fail" if overall_verdict(cases) == "fail" else "error"
        base = summary or RunSummary(run=run_id, lab="", backend="", lab_file="",
                                     started="", finished=None, status="", verdict="",
                                     scenarios=())
        write_summary(tmp, dataclasses.replace(
            base, status="interrupted", verdict=verdict, recovered=_now(),
            note=f"recovered after its process ({pid}) ended without finishing the run "
                 "(killed?)"))
        (tmp / "verdict").write_text(verdict + "\n")
        target = results_dir / _free_name(results_dir, run_id)
        os.rename(tmp, target)
        said.append(f"kept {target} as an interrupted run: its process ({pid}) ended "
                    f"without finishing it ({len(cases)} case(s) recorded, "
                    f"{len(raw)} raw file(s))")
    return said


def _free_name(folder: Path, base: str) -> str:
    candidate, n = base, 1
    while (folder / candidate).exists():
        n += 1
        candidate = f"{base}-{n}"
    return candidate


def latest_run(results_dir: Path) -> Path:
    runs = sorted(p for p in results_dir.glob("[0-9]*") if (p / SUMMARY).is_file()) \
        if results_dir.is_dir() else []
    if not runs:
        raise UsageError(f"no runs in {results_dir}; run `lab run` first")
    return runs[-1]
