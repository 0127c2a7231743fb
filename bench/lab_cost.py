"""Benchmark: `lab up` + `lab destroy` (netns) against the same topology made by the plain
`ip` command sequence, and the cost of creating/deleting N attached pods.

Run as root:  .venv/bin/python -m bench.lab_cost [--repeat 5] [--pods 1,16,64]
Prints median (min-max) of --repeat rounds and writes bench/out/lab_cost.json. Pod
create/delete times are also given for the state file alone (create_state_ms_per_pod).
Traffic: none (topology only).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import yaml

from bench.common import REPO, shown, spread

RAW = """set -e
ip netns add {p}-mcastsrc; ip -n {p}-mcastsrc link set lo up
ip netns add {p}-k8s; ip -n {p}-k8s link set lo up
ip -n {p}-mcastsrc link add eth1 type veth peer name eth1 netns {p}-k8s
ip -n {p}-mcastsrc addr add 192.168.56.12/24 dev eth1; ip -n {p}-mcastsrc link set eth1 up
ip -n {p}-k8s addr add 192.168.56.11/24 dev eth1; ip -n {p}-k8s link set eth1 up
"""
RAW_DOWN = "ip netns delete {p}-mcastsrc; ip netns delete {p}-k8s\n"


def timed(argv: list[str], **kw: object) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True, capture_output=True, timeout=120, **kw)  # type: ignore[call-overload]
    return time.perf_counter() - start


def _mem_available_kb() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1])
    return 0


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--pods", default="1,16,64")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="labbench-"))
    name = "b" + uuid.uuid4().hex[:6]
    data = yaml.safe_load((REPO / "lab.yaml").read_text())
    data["name"] = name
    (work / "lab.yaml").write_text(yaml.safe_dump(data))
    lab = [sys.executable, "-m", "lab", "-q", "-f", str(work / "lab.yaml")]
    # As a user runs it: bytecode written and used (a shell that sets
    # PYTHONDONTWRITEBYTECODE would charge every start with compiling lab's modules), and
    # one run first to write it.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    timed([*lab, "up"], env=env)
    timed([*lab, "destroy"], env=env)
    rows = []
    lab_t, raw_t = [], []
    for _ in range(args.repeat):
        lab_t.append(timed([*lab, "up"], env=env) + timed([*lab, "destroy"], env=env))
        p = "r" + uuid.uuid4().hex[:6]
        raw_t.append(timed(["bash", "-c", RAW.format(p=p)]) +
                     timed(["bash", "-c", RAW_DOWN.format(p=p)]))
    # Process start: a command that imports nothing heavy, against Python itself.
    # The floor of any `lab` process: Python plus the libraries the CLI and the lab file
    # are built on (click, PyYAML) and the standard modules every command needs, and
    # nothing of lab. Two of these (up, destroy) bound the whole-process ratio from below.
    floor = ("import click, yaml, dataclasses, json, subprocess, ipaddress, enum, pathlib")
    starts: dict[str, list[float]] = {"python -c pass": [], "floor: " + floor: [],
                                      "lab --help": [], "lab status (down)": []}
    for _ in range(max(5, args.repeat)):
        starts["python -c pass"].append(timed([sys.executable, "-c", "pass"], env=env))
        starts["floor: " + floor].append(timed([sys.executable, "-c", floor], env=env))
        starts["lab --help"].append(timed([*lab, "--help"], env=env))
        starts["lab status (down)"].append(timed([*lab, "status"], env=env))
    for what, values in starts.items():
        rows.append({"what": f"process start: {what} (s)", "wall": spread(values)})
    rows.append({"what": "lab up+destroy vs raw ip (s; runs interleaved)",
                 "lab": spread(lab_t), "raw": spread(raw_t),
                 "ratio": statistics.median(lab_t) / statistics.median(raw_t),
                 # What two processes that only import the libraries cost, against raw ip.
                 "floor_ratio": 2 * statistics.median(starts["floor: " + floor])
                 / statistics.median(raw_t)})
    # The topology work alone: the backend's up() and destroy() in this process (no
    # Python start-up, no lab file read), against the same raw `ip` sequence, interleaved.
    sys.path.insert(0, str(REPO))
    from lab.backends.netns.backend import NetnsBackend
    from lab.model.labfile import load_lab
    from lab.state import State
    from lab.ui import Reporter

    model = load_lab(work / "lab.yaml")
    inproc_t, raw2_t = [], []
    for _ in range(args.repeat):
        state = State(work / ".lab" / name / "state.json")
        backend = NetnsBackend(model, state, Reporter(quiet=True))
        t0 = time.perf_counter()
        backend.up()
        backend.destroy()
        inproc_t.append(time.perf_counter() - t0)
        p = "r" + uuid.uuid4().hex[:6]
        raw2_t.append(timed(["bash", "-c", RAW.format(p=p) + RAW_DOWN.format(p=p)]))
    rows.append({"what": "netns topology up+destroy in process vs raw ip (s; interleaved)",
                 "lab": spread(inproc_t), "raw": spread(raw2_t),
                 "ratio": statistics.median(inproc_t) / statistics.median(raw2_t)})
    # Pod cost, in-process so the numbers are the backend's own, not Python start-up.
    # Each size runs --repeat times, sizes interleaved (1, 16, 64, 1, 16, 64, ...). The time
    # spent saving the state file (rewritten after every record, so it grows with the
    # number of pods) is measured apart, so "netns + CNI" is not charged with it.
    from lab.host import PodSpec

    state_time = [0.0]
    original_save = State.save

    def timed_save(self: State) -> None:
        t = time.perf_counter()
        original_save(self)
        state_time[0] += time.perf_counter() - t

    State.save = timed_save  # type: ignore[method-assign]
    big = dict(data, network={"subnet": "192.168.56.0/22", "nic": "eth1"})
    big["attachment"] = dict(data["attachment"], range={"start": "192.168.56.13",
                                                        "end": "192.168.59.254"})
    (work / "lab.yaml").write_text(yaml.safe_dump(big))
    model = load_lab(work / "lab.yaml")
    backend = NetnsBackend(model, State(work / ".lab" / name / "state.json"), Reporter(quiet=True))
    backend.up()
    sizes = [int(x) for x in args.pods.split(",")]
    per: dict[int, dict[str, list[float]]] = {n: {} for n in sizes}
    try:
        for _ in range(args.repeat):
            for n in sizes:
                specs = [PodSpec(f"p{i}", True, "bench", ("iperf", "-s"), 60) for i in range(n)]
                mem0 = _mem_available_kb()
                state_time[0] = 0.0
                t0 = time.perf_counter()
                pods = backend.create_pods(specs)
                t1 = time.perf_counter()
                create_state = state_time[0]
                mem1 = _mem_available_kb()
                state_time[0] = 0.0
                backend.delete_pods(pods)
                t2 = time.perf_counter()
                for key, value in (
                        ("create_ms_per_pod", 1000 * (t1 - t0) / n),
                        ("create_state_ms_per_pod", 1000 * create_state / n),
                        ("delete_ms_per_pod", 1000 * (t2 - t1) / n),
                        ("delete_state_ms_per_pod", 1000 * state_time[0] / n),
                        # Machine-wide MemAvailable drop while the pods exist: anything else
                        # on the machine moves it too, so only the spread over rounds says
                        # whether a figure is above the noise.
                        ("memory_mb", (mem0 - mem1) / 1024)):
                    per[n].setdefault(key, []).append(value)
    finally:
        backend.destroy()
        State.save = original_save  # type: ignore[method-assign]
    for n in sizes:
        row: dict[str, object] = {"what": f"{n} attached pods", "repeat": args.repeat}
        row.update({k: spread(v) for k, v in per[n].items()})
        mem = per[n]["memory_mb"]
        row["memory_above_noise"] = min(mem) > 0 and (max(mem) - min(mem)) < statistics.median(mem)
        rows.append(row)
    out = REPO / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / "lab_cost.json").write_text(json.dumps(rows, indent=2))
    for r in rows:
        print("  ".join(f"{k}={shown(v)}" if isinstance(v, dict) else
                        f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}"
                        for k, v in r.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
