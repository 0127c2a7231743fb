"""The report's plots, drawn with matplotlib from a run's outcome. Each plot comes with the
rows it was drawn from (written beside it as CSV), so a reader, or a test, can check every
bar and line against summary.json.

matplotlib is imported here only, and this module only by `lab report` and friends:
drawing costs about a second of imports that no other command should pay.
"""

from __future__ import annotations

import io
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

import matplotlib

matplotlib.use("Agg")  # files only: no display, the same picture on every machine

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

from lab.run.outcome import CaseOutcome, ReceiverOutcome, RunSummary  # noqa: E402

KIND_COLOURS = {"host NIC": "#6b6b6b", "pod with the attachment": "#1f6fb4",
                "pod without the attachment": "#e07b12"}
WIDTH_IN, DPI = 9.0, 110


@dataclass(frozen=True)
class Plot:
    name: str  # file stem: plots/<name>.png and .csv
    title: str
    alt: str  # what the picture shows, for the page's alt text and captions
    png: bytes
    header: tuple[str, ...]
    rows: tuple[tuple[object, ...], ...]


def kind(r: ReceiverOutcome) -> str:
    if r.placement == "host":
        return "host NIC"
    return "pod with the attachment" if r.attachment else "pod without the attachment"


def label(case: CaseOutcome, r: ReceiverOutcome) -> str:
    return f"{case.name}\n{r.name}" + ("\n(expects nothing)" if r.expect.startswith("nothing")
                                        else "")


def _png(fig: Figure) -> bytes:
    out = io.BytesIO()
    # No timestamp or software tag in the file: the same run draws the same bytes.
    fig.savefig(out, format="png", dpi=DPI, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    return out.getvalue()


def _receivers(summary: RunSummary) -> list[tuple[CaseOutcome, ReceiverOutcome]]:
    return [(c, r) for c in summary.scenarios for r in c.receivers]


def _bars(pairs: Sequence[tuple[CaseOutcome, ReceiverOutcome]], values: Sequence[float | None],
          ylabel: str, title: str) -> Figure:
    fig, ax = plt.subplots(figsize=(WIDTH_IN, 4.2))
    xs = range(len(pairs))
    heights = [v if v is not None else 0.0 for v in values]
    colours = [KIND_COLOURS[kind(r)] for _, r in pairs]
    hatches = ["//" if r.expect.startswith("nothing") else "" for _, r in pairs]
    bars = ax.bar(xs, heights, color=colours, edgecolor="black", linewidth=0.4)
    for bar, hatch, value in zip(bars, hatches, values, strict=True):
        bar.set_hatch(hatch)
        if value is None:
            bar.set_alpha(0.0)
    ax.set_xticks(list(xs), [label(c, r) for c, r in pairs], fontsize=7)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    seen = {kind(r) for _, r in pairs}
    # Beside the axes, never over a bar or the line of what was sent.
    ax.legend(handles=[Patch(color=c, label=k) for k, c in KIND_COLOURS.items() if k in seen],
              fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return fig


def received_vs_sent(summary: RunSummary) -> Plot | None:
    pairs = _receivers(summary)
    if not pairs:
        return None
    fig = _bars(pairs, [r.received for _, r in pairs], "datagrams",
                "Received per receiver (bars) against sent (black line)")
    ax = fig.axes[0]
    for x, (c, _) in enumerate(pairs):
        if c.sent is not None:
            ax.hlines(c.sent, x - 0.45, x + 0.45, colors="black", linewidth=1.6)
    rows = tuple((c.name, r.name, r.placement, r.attachment, c.sent, r.received)
                 for c, r in pairs)
    return Plot("received", "Received against sent",
                "Bar chart: datagrams received by each receiver against the datagrams sent",
                _png(fig), ("case", "receiver", "placement", "attachment", "sent", "received"),
                rows)


def loss(summary: RunSummary) -> Plot | None:
    pairs = _receivers(summary)
    if not pairs:
        return None
    fig = _bars(pairs, [r.loss_pct for _, r in pairs], "loss %",
                "Loss per receiver (hatched: expects nothing, so 100 % is its pass)")
    rows = tuple((c.name, r.name, r.attachment, r.expect, r.lost, r.loss_pct) for c, r in pairs)
    return Plot("loss", "Loss per receiver",
                "Bar chart: percentage of sent datagrams each receiver lost", _png(fig),
                ("case", "receiver", "attachment", "expect", "lost", "loss_pct"), rows)


def jitter(summary: RunSummary) -> Plot | None:
    pairs = [(c, r) for c, r in _receivers(summary) if r.jitter_ms is not None]
    if not pairs:
        return None
    fig = _bars(pairs, [r.jitter_ms for _, r in pairs], "jitter (ms)",
                "Jitter per receiver, as iperf measured it")
    rows = tuple((c.name, r.name, r.jitter_ms) for c, r in pairs)
    return Plot("jitter", "Jitter per receiver",
                "Bar chart: jitter in milliseconds of each receiver that got data", _png(fig),
                ("case", "receiver", "jitter_ms"), rows)


def throughput(summary: RunSummary) -> Plot | None:
    cases = [c for c in summary.scenarios if any(r.intervals for r in c.receivers)]
    if not cases:
        return None
    fig, axes = plt.subplots(len(cases), 1, figsize=(WIDTH_IN, 2.4 * len(cases) + 0.6),
                             squeeze=False)
    rows: list[tuple[object, ...]] = []
    for ax, c in zip(axes[:, 0], cases, strict=True):
        for r in c.receivers:
            if not r.intervals:
                continue
            ends = [i.end_s for i in r.intervals]
            mbps = [i.rate_bps / 1e6 for i in r.intervals]
            ax.plot(ends, mbps, marker="o", markersize=3, linewidth=1.2,
                    color=KIND_COLOURS[kind(r)] if len(c.receivers) == 1 else None,
                    label=r.name)
            rows.extend((c.name, r.name, i.start_s, i.end_s, i.rate_bps, i.received, i.lost)
                        for i in r.intervals)
        ax.axhline(c.rate_bps / 1e6, color="black", linestyle=":", linewidth=1)
        ax.set_title(f"{c.name}: per second (dotted: offered {c.rate_bps / 1e6:g} Mbit/s)",
                     fontsize=9)
        ax.set_ylabel("Mbit/s")
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        if len(c.receivers) <= 8:
            ax.legend(fontsize=7, loc="lower right")
    axes[-1, 0].set_xlabel("seconds since the receiver's first datagram")
    fig.tight_layout()
    return Plot("throughput", "Throughput per second",
                "Line chart: each receiver's throughput per second over the run", _png(fig),
                ("case", "receiver", "start_s", "end_s", "rate_bps", "received", "lost"),
                tuple(rows))


def rate_sweep(summary: RunSummary) -> Plot | None:
    by_scenario: dict[str, list[CaseOutcome]] = {}
    for c in summary.scenarios:
        by_scenario.setdefault(c.scenario, []).append(c)
    sweeps = {s: cs for s, cs in by_scenario.items() if len({c.rate_bps for c in cs}) > 1}
    if not sweeps:
        return None
    fig, ax = plt.subplots(figsize=(WIDTH_IN, 4.2))
    rows: list[tuple[object, ...]] = []
    for scenario, cases in sweeps.items():
        cases = sorted(cases, key=lambda c: c.rate_bps)
        groups = sorted({r.receiver for c in cases for r in c.receivers})
        for group in groups:
            xs, median, worst = [], [], []
            for c in cases:
                losses = [r.loss_pct for r in c.receivers
                          if r.receiver == group and r.loss_pct is not None]
                rows.extend((scenario, c.name, c.rate_bps, group, r.name, r.loss_pct)
                            for r in c.receivers if r.receiver == group)
                if losses:
                    xs.append(c.rate_bps / 1e6)
                    median.append(statistics.median(losses))
                    worst.append(max(losses))
            line = ax.plot(xs, median, marker="o", label=f"{scenario} {group} (median)")
            if any(w != m for w, m in zip(worst, median, strict=True)):
                ax.plot(xs, worst, marker="x", linestyle="--", color=line[0].get_color(),
                        label=f"{scenario} {group} (worst)")
    ax.set_xlabel("offered rate (Mbit/s)")
    ax.set_ylabel("loss %")
    ax.set_title("Rate sweep: loss against offered rate")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return Plot("sweep", "Rate sweep",
                "Line chart: loss percentage against offered rate for each swept scenario",
                _png(fig), ("scenario", "case", "rate_bps", "receiver", "member", "loss_pct"),
                tuple(rows))


def run_plots(summary: RunSummary) -> list[Plot]:
    """Every plot the run has data for, in the page's order."""
    made = (received_vs_sent(summary), loss(summary), rate_sweep(summary),
            throughput(summary), jitter(summary))
    return [p for p in made if p is not None]


def compare_plot(a: RunSummary, b: RunSummary, cases: Sequence[str]) -> Plot:
    """Loss of each receiver of the cases both runs have, A beside B."""
    rows: list[tuple[object, ...]] = []
    labels: list[str] = []
    loss_a: list[float] = []
    loss_b: list[float] = []
    ca = {c.name: c for c in a.scenarios}
    cb = {c.name: c for c in b.scenarios}
    for name in cases:
        ra = {r.name: r for r in ca[name].receivers}
        rb = {r.name: r for r in cb[name].receivers}
        for member in [m for m in ra if m in rb]:
            la, lb = ra[member].loss_pct, rb[member].loss_pct
            rows.append((name, member, la, lb))
            labels.append(f"{name}\n{member}")
            loss_a.append(la if la is not None else 0.0)
            loss_b.append(lb if lb is not None else 0.0)
    fig, ax = plt.subplots(figsize=(WIDTH_IN, 4.2))
    xs = range(len(labels))
    ax.bar([x - 0.2 for x in xs], loss_a, width=0.4, label=f"A: {a.run} ({a.backend})",
           color="#1f6fb4")
    ax.bar([x + 0.2 for x in xs], loss_b, width=0.4, label=f"B: {b.run} ({b.backend})",
           color="#e07b12")
    ax.set_xticks(list(xs), labels, fontsize=7)
    ax.set_ylabel("loss %")
    ax.set_title("Loss per receiver, run A beside run B")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    return Plot("compare-loss", "Loss, A beside B",
                "Bar chart: each receiver's loss in run A beside run B", _png(fig),
                ("case", "receiver", "loss_pct_a", "loss_pct_b"), tuple(rows))
