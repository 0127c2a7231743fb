"""Run artifact folders: `results/<run id>/`, written in a hidden folder and renamed into
place when the run ends (also when it fails or is interrupted), never overwritten."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
from pathlib import Path
from typing import Any

import yaml

from lab.errors import UsageError

SUMMARY = "summary.json"


class RunArtifacts:
    def __init__(self, results_dir: Path, label: str, meta: dict[str, Any]) -> None:
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
        self.meta = meta
        self.cases: list[dict[str, Any]] = []
        self.final: Path | None = None

    def write(self, relative: str, text: str) -> Path:
        path = self.tmp / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path

    def write_resolved(self, case_name: str, resolved: dict[str, Any]) -> None:
        self.write(f"resolved/{case_name}.yaml", yaml.safe_dump(resolved, sort_keys=False))

    def add_case(self, case: dict[str, Any]) -> None:
        self.cases.append(case)
        self._write_summary(final=False)  # what was gathered so far survives a crash

    def _write_summary(self, final: bool, status: str = "running") -> None:
        summary = {
            "run": self.run_id,
            **self.meta,
            "started": self.started.isoformat(timespec="seconds"),
            "finished": dt.datetime.now(dt.UTC).isoformat(timespec="seconds") if final else None,
            "status": status,
            "verdict": overall_verdict(self.cases),
            "scenarios": self.cases,
        }
        _write_summary_file(self.tmp, summary)

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


TMP_PREFIX = ".tmp-"


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
        summary_path = tmp / SUMMARY
        summary: dict[str, Any] = {}
        if summary_path.is_file():
            try:
                summary = json.loads(summary_path.read_text())
            except ValueError:
                summary = {}
        cases = summary.get("scenarios") or []
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
        summary.update({"run": summary.get("run", run_id), "status": "interrupted",
                        "verdict": verdict, "scenarios": cases,
                        "recovered": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                        "note": f"recovered after its process ({pid}) ended without "
                                "finishing the run (killed?)"})
        _write_summary_file(tmp, summary)
        (tmp / "verdict").write_text(verdict + "\n")
        target = results_dir / _free_name(results_dir, run_id)
        os.rename(tmp, target)
        said.append(f"kept {target} as an interrupted run: its process ({pid}) ended "
                    f"without finishing it ({len(cases)} case(s) recorded, "
                    f"{len(raw)} raw file(s))")
    return said


def _write_summary_file(folder: Path, summary: dict[str, Any]) -> None:
    """summary.json written whole or not at all (a crash never leaves half a file)."""
    tmp = folder / f".{SUMMARY}.tmp"
    tmp.write_text(json.dumps(summary, indent=2) + "\n")
    os.replace(tmp, folder / SUMMARY)


def _free_name(folder: Path, base: str) -> str:
    candidate, n = base, 1
    while (folder / candidate).exists():
        n += 1
        candidate = f"{base}-{n}"
    return candidate


def overall_verdict(cases: list[dict[str, Any]]) -> str:
    verdicts = {c["verdict"] for c in cases}
    if "error" in verdicts:
        return "error"
    if "fail" in verdicts:
        return "fail"
    return "pass" if cases else "none"


def latest_run(results_dir: Path) -> Path:
    runs = sorted(p for p in results_dir.glob("[0-9]*") if (p / SUMMARY).is_file()) \
        if results_dir.is_dir() else []
    if not runs:
        raise UsageError(f"no runs in {results_dir}; run `lab run` first")
    return runs[-1]


def load_summary(run_dir: Path) -> dict[str, Any]:
    path = run_dir / SUMMARY
    if not path.is_file():
        raise UsageError(f"{run_dir} has no {SUMMARY}")
    data: dict[str, Any] = json.loads(path.read_text())
    return data
