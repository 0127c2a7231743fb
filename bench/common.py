"""What every benchmark shares: a netns lab of its own, figures as median and spread of
repeated runs, and the socket buffer sizes a figure depends on."""

from __future__ import annotations

import dataclasses
import json
import statistics
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

# A datagram of iperf's default UDP payload, as the rate counts it.
DATAGRAM_BITS = 1470 * 8


def spread(values: list[float]) -> dict[str, float]:
    """Median, min and max of repeated measurements."""
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "n": len(values)}


def shown(s: dict[str, float], fmt: str = "{:.2f}") -> str:
    if s["n"] == 1:
        return fmt.format(s["median"])
    return f"{fmt.format(s['median'])} ({fmt.format(s['min'])}-{fmt.format(s['max'])})"


def lab_file(work: Path, prefix: str, **changes: Any) -> Path:
    data = yaml.safe_load((REPO / "lab.yaml").read_text())
    data["name"] = prefix + uuid.uuid4().hex[:6]
    data.update(changes)
    path = work / f"{data['name']}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@contextmanager
def netns_lab(prefix: str, **changes: Any) -> Iterator[Any]:
    """A netns lab of this benchmark's own (its own name), up, destroyed afterwards."""
    from lab.backends.netns.backend import NetnsBackend
    from lab.model.labfile import load_lab
    from lab.state import State
    from lab.ui import Reporter

    work = Path(tempfile.mkdtemp(prefix=f"bench-{prefix}-"))
    lab = load_lab(lab_file(work, prefix, **changes))
    backend = NetnsBackend(lab, State(work / ".lab" / lab.name / "state.json"),
                           Reporter(quiet=True))
    backend.up()
    try:
        yield backend
    finally:
        backend.destroy()


def run_scenario(backend: Any, scenario: dict[str, Any]) -> dict[str, Any]:
    """One case of `scenario` (a scenario file's mapping) on `backend`; its outcome as the
    mapping summary.json holds."""
    from lab.model.scenario import load_scenario
    from lab.run.artifacts import RunArtifacts
    from lab.run.runner import run_case
    from lab.ui import Reporter

    work = backend.state.path.parent
    path = work / "bench-scenario.yaml"
    path.write_text(yaml.safe_dump(scenario))
    case = load_scenario(path, backend.lab).cases()[0]
    artifacts = RunArtifacts(work / "results", "bench", {})
    try:
        return dataclasses.asdict(run_case(case, backend, artifacts, Reporter(quiet=True)))
    finally:
        artifacts.finish("complete")


def rmem_max() -> int:
    return int(Path("/proc/sys/net/core/rmem_max").read_text())


def obtained_receive_buffer(netns: str, requested: int | None) -> int:
    """The SO_RCVBUF a socket in `netns` really gets for `requested` bytes (the kernel
    doubles the request and caps it at rmem_max), or the default with no request."""
    code = ("import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
            + (f"s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, {requested})\n"
               if requested else "")
            + "print(s.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF))")
    out = subprocess.run(["ip", "netns", "exec", netns, sys.executable, "-c", code],
                         capture_output=True, text=True, timeout=30, check=True)
    return int(out.stdout.strip())


def buffer_bytes(text: str | None) -> int | None:
    """iperf's -w value (4M, 512K, 262144) in bytes; iperf counts K and M in 1024s."""
    if not text:
        return None
    units = {"K": 1024, "M": 1024 * 1024}
    return int(text[:-1]) * units[text[-1]] if text[-1] in units else int(text)


def print_and_keep(name: str, rows: dict[str, object], width: int = 42) -> None:
    """The table printed (figures as median (min-max), ratios with two decimals) and kept
    in bench/out/<name>.json."""
    out = REPO / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(rows, indent=2))
    for k, v in rows.items():
        print(f"{k:{width}s} {shown(v) if isinstance(v, dict) else f'{v:.2f}'}")
