"""Benchmark: throughput ceiling of one attached pod (macvlan) against a receiver on a
plain veth (the node's own lab NIC), at increasing rates, in the same run.

Run as root:  .venv/bin/python -m bench.ceiling [--rates 100M,400M,1G,2G,3G,4G]
              [--duration 3] [--buffer 4M] [--repeat 3]
The loss-free rate is the highest rate with median loss <= 1 %. Writes
bench/out/ceiling.json. The receive buffer asked for (-w) is not what a socket gets: the
kernel doubles the request and caps it at net.core.rmem_max (4 MiB on some machines,
about 208 KiB on a stock kernel), so the figure depends on the machine: the buffer really
obtained, and rmem_max, are measured in the receivers' namespace and kept with every row.
Rates and receivers alternate within each round; figures are median (min-max) of rounds.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from bench.common import (
    REPO,
    buffer_bytes,
    netns_lab,
    obtained_receive_buffer,
    rmem_max,
    run_scenario,
    shown,
    spread,
)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rates", default="100M,400M,1G,2G,3G,4G")
    ap.add_argument("--duration", type=int, default=3)
    ap.add_argument("--buffer", default="4M", help="iperf -w; 'none' for the default")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    asked = None if args.buffer == "none" else args.buffer
    placements = {"veth": {"name": "veth", "placement": "host"},
                  "macvlan-pod": {"name": "pod", "placement": "pod", "attachment": True}}
    got: dict[tuple[str, str], list[dict[str, Any]]] = {}
    with netns_lab("c") as backend:
        node = backend.host_netns(backend.lab.node.name)
        buffers = {"requested": buffer_bytes(asked), "rmem_max": rmem_max(),
                   "obtained": obtained_receive_buffer(node, buffer_bytes(asked))}
        print(f"receive buffer: asked {asked or 'default'}, obtained {buffers['obtained']} "
              f"bytes (rmem_max {buffers['rmem_max']})", flush=True)
        for round_ in range(args.repeat):
            order = list(placements) if round_ % 2 == 0 else list(reversed(placements))
            for rate in args.rates.split(","):
                for label in order:
                    scenario = {"name": "ceiling", "group": "224.0.67.71", "port": 5011,
                                "rate": rate, "duration": args.duration,
                                "sender": {"host": "mcastsrc"},
                                "receivers": [placements[label]],
                                "expect": {"receive": True, "min_received_pct": 99}}
                    if asked:
                        scenario["receive_buffer"] = asked
                    out = run_scenario(backend, scenario)
                    (r,) = out["receivers"]
                    got.setdefault((rate, label), []).append(
                        {"sent": out["sent"], "received": r["received"],
                         "loss_pct": r["loss_pct"] if r["loss_pct"] is not None else 100.0,
                         "rate_bps": r["rate_bps"]})
                    print(f"  round {round_ + 1}: {rate:>6} {label:>12}: sent {out['sent']}, "
                          f"received {r['received']}, loss {r['loss_pct']} %, "
                          f"{r['rate_bps'] / 1e6:.1f} Mbit/s", flush=True)
    rows = []
    best: dict[str, float] = {}
    print(f"\n{'rate':>6} {'receiver':>12}  loss % median (min-max)   received Mbit/s")
    for (rate, label), runs in got.items():
        loss = spread([g["loss_pct"] for g in runs])
        mbps = spread([g["rate_bps"] / 1e6 for g in runs])
        rows.append({"rate": rate, "receiver": label, "loss_pct": loss, "mbps": mbps,
                     **{f"buffer_{k}": v for k, v in buffers.items()}, "runs": runs})
        if loss["median"] <= 1.0:
            best[label] = max(best.get(label, 0.0), mbps["median"])
        print(f"{rate:>6} {label:>12}  {shown(loss):>24}   {shown(mbps, '{:.0f}')}")
    ratio = best.get("macvlan-pod", 0.0) / best["veth"] if best.get("veth") else None
    print(f"loss-free (median <= 1 %): veth {best.get('veth', 0):.0f} Mbit/s, macvlan pod "
          f"{best.get('macvlan-pod', 0):.0f} Mbit/s, ratio {ratio}; buffer obtained "
          f"{buffers['obtained']} bytes, rmem_max {buffers['rmem_max']}")
    out_dir = REPO / "bench" / "out"
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "ceiling.json").write_text(json.dumps(
        {"rows": rows, "loss_free_mbps": best, "ratio": ratio, "buffer": buffers},
        indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
