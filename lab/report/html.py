"""`report.html`: one self-contained page of a run (or two runs side by side) that opens
in any browser with no network: styles inline, plots embedded as data: URIs. The plots
are also written beside it as PNG with their data as CSV (`plots/`), for a blog post.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from lab.errors import UsageError
from lab.report import plots
from lab.run.artifacts import LAB_FILE
from lab.run.outcome import CaptureOutcome, CaseOutcome, RunSummary

REPORT = "report.html"
PLOTS = "plots"

_STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2em auto;
max-width:1100px;padding:0 1em;color:#1d1d1f;line-height:1.45}
h1{font-size:1.6em;margin-bottom:.2em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;
margin-top:1.6em}h3{margin-bottom:.3em}
table{border-collapse:collapse;margin:.5em 0 1em;font-size:.92em}
th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left;vertical-align:top}
th{background:#f3f3f5}td.n{text-align:right;font-variant-numeric:tabular-nums}
.pass{color:#0a7d28;font-weight:600}.fail,.error{color:#c0171c;font-weight:600}
.verdict{font-size:1.3em}.muted{color:#666}figure{margin:1em 0}
figure img{max-width:100%;border:1px solid #eee}figcaption{color:#555;font-size:.9em}
pre{background:#f6f6f8;padding:.6em;overflow-x:auto;font-size:.85em}
"""


def _e(value: Any) -> str:
    return html.escape("-" if value is None else str(value))


def _verdict(v: str) -> str:
    return f'<span class="{_e(v)}">{_e(v.upper())}</span>'


def _table(header: Sequence[str], rows: Iterable[Sequence[str]], numeric: set[int]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f'<td class="n">{cell}</td>' if i in numeric
                                    else f"<td>{cell}</td>" for i, cell in enumerate(row))
                   + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _page(title: str, body: str) -> str:
    # No <script>, no external URL: the page is whole in one file.
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>{_e(title)}</title><style>{_STYLE}</style></head>"
            f"<body>{body}</body></html>\n")


def _write_plot(folder: Path, plot: plots.Plot) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{plot.name}.png").write_bytes(plot.png)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(plot.header)
    writer.writerows(["" if v is None else v for v in row] for row in plot.rows)
    (folder / f"{plot.name}.csv").write_text(out.getvalue())


def _figure(plot: plots.Plot) -> str:
    data = base64.b64encode(plot.png).decode()
    return (f'<figure id="plot-{_e(plot.name)}"><img alt="{_e(plot.alt)}" '
            f'src="data:image/png;base64,{data}"><figcaption>{_e(plot.title)}: '
            f"{_e(plot.alt)} (also <code>{PLOTS}/{_e(plot.name)}.png</code>, data in "
            f"<code>{PLOTS}/{_e(plot.name)}.csv</code>)</figcaption></figure>")


def _write_page(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)  # a reader never opens half a page


# -- one run ---------------------------------------------------------------------------------


def read_lab(folder: Path) -> dict[str, Any] | None:
    path = folder / LAB_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _lab_section(lab: dict[str, Any] | None) -> str:
    if lab is None:
        return "<h2>Lab</h2><p class=muted>This run did not record its lab (lab.json).</p>"
    hosts = _table(("host", "role", "address", "lab NIC"),
                   ([_e(h.get("name")), _e(h.get("role")), _e(h.get("address")),
                     _e(h.get("nic"))] for h in lab.get("hosts", [])), set())
    att = lab.get("attachment", {})
    parts = [f"<h2>Lab</h2><p>Lab <b>{_e(lab.get('name'))}</b> on the "
             f"<b>{_e(lab.get('backend'))}</b> backend; lab network "
             f"{_e(lab.get('subnet'))}. Pods get the attachment <code>"
             f"{_e(att.get('name'))}@{_e(att.get('ifname'))}</code> (macvlan, mode "
             f"{_e(att.get('mode'))}, addresses {_e(att.get('range'))}).</p>", hosts]
    if lab.get("nad"):
        parts.append("<h3>NetworkAttachmentDefinition</h3>"
                     f"<pre>{_e(lab['nad'])}</pre>")
    return "".join(parts)


def _receivers_table(case: CaseOutcome) -> str:
    rows = []
    for r in case.receivers:
        where = f"{r.host} {r.iface}" if r.placement == "host" else \
            f"pod on {r.host}, {r.iface} ({'with' if r.attachment else 'without'} the " \
            "attachment)"
        rows.append([_e(r.name), _e(where), _e(case.sent), _e(r.received), _e(r.loss_pct),
                     _e(r.jitter_ms), _e(r.expect), _verdict(r.verdict)])
    return _table(("receiver", "on", "sent", "received", "loss %", "jitter ms", "expected",
                   "verdict"), rows, {2, 3, 4, 5})


def _captures(case: CaseOutcome) -> str:
    if not case.captures:
        return ""
    received = {r.name: r.received for r in case.receivers}
    parts = [f"<h4>Captures (group {_e(case.group)})</h4>"]
    parts.append(_table(
        ("point", "where", "packets", "datagrams of the group", "receiver counted",
         "IGMP membership reports", "file"),
        ([_e(c.point), _e(f"{c.host} {c.iface}"), _e(c.packets), _e(c.datagrams),
          _e(received.get(c.point)), _igmp_cell(c),
          _e(c.file or "-") + (f'<br><span class="error">{_e(c.error)}</span>'
                               if c.error else "")]
         for c in case.captures), {2, 3, 4}))
    return "".join(parts)


def _ports(case: CaseOutcome) -> str:
    if not case.ports:
        return ""
    return "<h4>Lab switch ports (packets sent toward each host while the sender sent)" \
        "</h4>" + _table(("host", "packets", "bytes", "datagrams sent", "expected",
                          "verdict"),
                         ([_e(p.host), _e(p.packets), _e(p.bytes), _e(case.sent),
                           _e(f"{p.expect} of the group"), _verdict(p.verdict)]
                          for p in case.ports), {1, 2, 3})


def _igmp_cell(c: CaptureOutcome) -> str:
    if not c.igmp:
        return '<span class="muted">none</span>'
    return "<br>".join(f"{m.time_s:.3f} s {_e(m.source)}: IGMPv{m.version} {_e(m.kind)} "
                       f"{_e(m.group)}" for m in c.igmp)


def _sender_rate(case: CaseOutcome) -> str:
    if case.sent_rate_bps is None:
        return ""
    said = f" ({case.sent_rate_bps / 1e6:.3g} Mbit/s reached"
    if case.sender_held_back:
        return said + ': <span class="fail">under the rate asked: the receive path held ' \
                      "the sender back</span>)"
    return said + ")"


def _case_section(case: CaseOutcome) -> str:
    error = f'<p class="error">{_e(case.error)}</p>' if case.error else ""
    return (f'<h3 id="case-{_e(case.name)}">{_e(case.name)} {_verdict(case.verdict)}</h3>'
            f"<p>{_e(case.group)}, {case.rate_bps / 1e6:g} Mbit/s for {case.duration_s} s; "
            f"sent {_e(case.sent)} datagrams{_sender_rate(case)}; scenario file "
            f"<code>{_e(case.file)}</code></p>{error}{_receivers_table(case)}{_ports(case)}"
            f"{_captures(case)}")


def write_report(folder: Path, summary: RunSummary) -> Path:
    """Write `report.html` and `plots/` into the run folder; returns the page's path."""
    made = plots.run_plots(summary)
    for plot in made:
        _write_plot(folder / PLOTS, plot)
    counts = {v: sum(c.verdict == v for c in summary.scenarios) for v in ("pass", "fail",
                                                                           "error")}
    head = (f"<h1>mcast-lab run {_e(summary.run)}</h1>"
            f'<p class="verdict">Verdict: {_verdict(summary.verdict)} '
            f"({counts['pass']} passed, {counts['fail']} failed, {counts['error']} errors)</p>"
            f"<p class=muted>{_e(summary.status)}; started {_e(summary.started)}, finished "
            f"{_e(summary.finished)}; lab file <code>{_e(summary.lab_file)}</code></p>")
    verdicts = _table(("scenario", "receivers", "expected", "verdict"),
                      ([f'<a href="#case-{_e(c.name)}">{_e(c.name)}</a>',
                        _e(", ".join(r.name for r in c.receivers)),
                        _e("; ".join(sorted({r.expect for r in c.receivers}))),
                        _verdict(c.verdict)] for c in summary.scenarios), set())
    body = [head, _lab_section(read_lab(folder)), "<h2>Scenarios</h2>", verdicts,
            *(_case_section(c) for c in summary.scenarios), "<h2>Plots</h2>",
            *(_figure(p) for p in made)]
    path = folder / REPORT
    _write_page(path, _page(f"mcast-lab run {summary.run}", "".join(body)))
    return path


# -- two runs side by side ------------------------------------------------------------------


def changes(a: CaseOutcome, b: CaseOutcome) -> list[str]:
    """What changed from A to B in one case, in words."""
    said: list[str] = []
    if a.verdict != b.verdict:
        said.append(f"verdict {a.verdict.upper()} → {b.verdict.upper()}")
    ra = {r.name: r for r in a.receivers}
    rb = {r.name: r for r in b.receivers}
    for name in [n for n in ra if n not in rb]:
        said.append(f"{name} only in A")
    for name in [n for n in rb if n not in ra]:
        said.append(f"{name} only in B")
    for name in [n for n in ra if n in rb]:
        la, lb = ra[name].loss_pct, rb[name].loss_pct
        if la is not None and lb is not None and abs(la - lb) >= 0.01:
            said.append(f"{name} loss {la:g} % → {lb:g} %")
        elif ra[name].received != rb[name].received and (la is None or lb is None):
            said.append(f"{name} received {ra[name].received} → {rb[name].received}")
    if a.rate_bps != b.rate_bps or a.duration_s != b.duration_s:
        said.append(f"stream {a.rate_bps / 1e6:g} Mbit/s × {a.duration_s} s → "
                    f"{b.rate_bps / 1e6:g} Mbit/s × {b.duration_s} s")
    return said or ["no change"]


def common_cases(a: RunSummary, b: RunSummary) -> list[str]:
    names_b = {c.name for c in b.scenarios}
    common = [c.name for c in a.scenarios if c.name in names_b]
    if not common:
        raise UsageError(f"runs {a.run} and {b.run} have no scenario in common (A ran "
                         f"{', '.join(c.name for c in a.scenarios) or 'none'}; B ran "
                         f"{', '.join(c.name for c in b.scenarios) or 'none'})")
    return common


def write_comparison(folder_a: Path, a: RunSummary, folder_b: Path, b: RunSummary) -> Path:
    """`compare-<B>/report.html` in run A's folder: the cases both ran, side by side."""
    common = common_cases(a, b)
    out = folder_a / f"compare-{b.run}"
    plot = plots.compare_plot(a, b, common)
    _write_plot(out / PLOTS, plot)
    ca = {c.name: c for c in a.scenarios}
    cb = {c.name: c for c in b.scenarios}
    rows = []
    for name in common:
        for r in ca[name].receivers:
            other = next((x for x in cb[name].receivers if x.name == r.name), None)
            rows.append([_e(name), _e(r.name), _e(r.received), _e(r.loss_pct),
                         _verdict(r.verdict), _e(other.received if other else None),
                         _e(other.loss_pct if other else None),
                         _verdict(other.verdict) if other else "-"])
    only = sorted({c.name for c in a.scenarios} ^ {c.name for c in b.scenarios})
    body = [f"<h1>mcast-lab: {_e(a.run)} against {_e(b.run)}</h1>",
            _table(("", "run", "backend", "verdict", "lab file"),
                   ([_e(k), _e(s.run), _e(s.backend), _verdict(s.verdict), _e(s.lab_file)]
                    for k, s in (("A", a), ("B", b))), set()),
            "<h2>What changed</h2>",
            _table(("scenario", "A", "B", "what changed"),
                   ([_e(n), _verdict(ca[n].verdict), _verdict(cb[n].verdict),
                     _e("; ".join(changes(ca[n], cb[n])))] for n in common), set()),
            (f"<p class=muted>Only in one run (not compared): {_e(', '.join(only))}</p>"
             if only else ""),
            "<h2>Receivers</h2>",
            _table(("scenario", "receiver", "A received", "A loss %", "A verdict",
                    "B received", "B loss %", "B verdict"), rows, {2, 3, 5, 6}),
            "<h2>Plots</h2>", _figure(plot)]
    path = out / REPORT
    _write_page(path, _page(f"mcast-lab {a.run} against {b.run}", "".join(body)))
    return path
