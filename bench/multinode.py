"""Benchmark: one node against several. Two labs up side by side, the same pods on each:
(a) attached pods created and deleted, per second, on 1 node against spread over 3 nodes;
(b) fan-out loss with 64 attached pods on 1 node against spread over 4 nodes, at a rate.

Run as root:  .venv/bin/python -m bench.multinode [--pods 96] [--fanout 64@20M]
              [--duration 10] [--repeat 3]

Both settings run in every round, their order flipped each round (a drift of the machine
does not land on one of them). Figures: median (min-max) over the rounds; when the two
spreads overlap, the bench says so instead of calling one faster. Every node here is a
namespace on the same two cores: more nodes spread the macvlan copies over more master
devices (one broadcast queue each), not over more CPUs. Writes bench/out/multinode.json.
"""

from __future__ import annotations

import argparse
import json
import time
from contextlib import ExitStack
from typing import Any

from bench.common import REPO, netns_lab, run_scenario, shown, spread

SOURCE = {"name": "mcastsrc", "role": "source", "address": "192.168.56.12"}


def _hosts(nodes: int) -> list[dict[str, Any]]:
    return [SOURCE, *({"name": f"n{i}", "role": "node", "address": f"192.168.56.{2 + i}"}
                      for i in range(1, nodes + 1))]


def _lab(stack: ExitStack, nodes: int) -> Any:
    return stack.enter_context(netns_lab(
        f"n{nodes}", hosts=_hosts(nodes), switch={"igmp_snooping": False},
        network={"subnet": "192.168.56.0/22", "nic": "eth1"},
        attachment={"name": "eth1-multicast", "ifname": "eth1", "mode": "bridge",
                    "cni_version": "0.3.1", "bclim": -1,
                    "range": {"start": "192.168.57.1", "end": "192.168.59.250"}}))


def _overlap(a: dict[str, float], b: dict[str, float]) -> bool:
    return a["min"] <= b["max"] and b["min"] <= a["max"]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pods", type=int, default=96, help="pods created per round")
    ap.add_argument("--spread-nodes", type=int, default=3)
    ap.add_argument("--fanout", default="64@20M", help="PODS@RATE of the fan-out case")
    ap.add_argument("--fanout-nodes", type=int, default=4)
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    from lab.host import PodSpec

    fan_pods, fan_rate = int(args.fanout.split("@")[0]), args.fanout.split("@")[1]
    create: dict[int, list[float]] = {}
    delete: dict[int, list[float]] = {}
    loss: dict[int, list[float]] = {}
    reached: dict[int, list[float]] = {}
    with ExitStack() as stack:
        labs = {n: _lab(stack, n) for n in sorted({1, args.spread_nodes, args.fanout_nodes})}
        for round_ in range(args.repeat):
            order = [1, args.spread_nodes] if round_ % 2 == 0 else [args.spread_nodes, 1]
            for n in order:
                backend = labs[n]
                nodes = [h.name for h in backend.lab.nodes]
                specs = [PodSpec(f"c{i}", True, "bench", ("iperf", "-s"), 60,
                                 nodes[i % len(nodes)]) for i in range(args.pods)]
                t0 = time.perf_counter()
                pods = backend.create_pods(specs)
                t1 = time.perf_counter()
                backend.delete_pods(pods)
                t2 = time.perf_counter()
                create.setdefault(n, []).append(args.pods / (t1 - t0))
                delete.setdefault(n, []).append(args.pods / (t2 - t1))
            order = [1, args.fanout_nodes] if round_ % 2 == 0 else [args.fanout_nodes, 1]
            for n in order:
                out = run_scenario(labs[n], {
                    "name": f"fan{n}", "group": "224.0.67.80", "port": 5010,
                    "rate": fan_rate, "duration": args.duration,
                    "sender": {"host": "mcastsrc"},
                    "receivers": [{"name": "fan", "placement": "pod", "count": fan_pods,
                                   "node": "spread", "attachment": True}],
                    "expect": {"receive": True}})
                worst = max(r["loss_pct"] or 0.0 for r in out["receivers"])
                loss.setdefault(n, []).append(worst)
                # With bclim -1 a receive path that cannot keep up holds the sender back
                # rather than drop: the rate the sender reached is the other half.
                rate = (out["sent_rate_bps"] or 0) / 1e6
                reached.setdefault(n, []).append(rate)
                print(f"round {round_ + 1}: {fan_pods} pods on {n} node(s) at {fan_rate}: "
                      f"worst loss {worst:.3f} %, sender reached {rate:.1f} Mbit/s",
                      flush=True)
    rows = []
    for what, data, unit in (("pods created per second", create, "/s"),
                             ("pods deleted per second", delete, "/s"),
                             (f"fan-out {fan_pods} pods at {fan_rate}: worst receiver's loss",
                              loss, "%"),
                             (f"fan-out {fan_pods} pods at {fan_rate}: rate the sender reached",
                              reached, " Mbit/s")):
        figures = {n: spread(v) for n, v in data.items()}
        a, b = sorted(figures)
        row = {"what": what, "unit": unit, "repeat": args.repeat,
               **{f"{n} node(s)": figures[n] for n in figures},
               "spreads_overlap": _overlap(figures[a], figures[b])}
        rows.append(row)
        print(f"{what}: " + "; ".join(f"{n} node(s) {shown(figures[n])}{unit}"
                                      for n in figures)
              + ("  (spreads overlap: no difference shown)" if row["spreads_overlap"] else ""))
    out_dir = REPO / "bench" / "out"
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "multinode.json").write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
