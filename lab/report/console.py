"""Tables for people: run summaries, lab status, doctor checks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

# Types only: `lab status` must not pay for importing outcomes and backends it never reads.
if TYPE_CHECKING:
    from lab.backends.base import LabStatus
    from lab.check import Check
    from lab.run.outcome import CaseOutcome, ReceiverOutcome, RunSummary

_VERDICT = {"pass": "[green]PASS[/green]", "fail": "[red]FAIL[/red]",
            "error": "[red]ERROR[/red]", "none": "-"}


def _num(value: Any, fmt: str = "{}") -> str:
    return "-" if value is None else fmt.format(value)


@dataclass
class _Row:
    """One table row: a receiver group of a case, everything already worded."""

    case: str  # "" on a case's second and later rows
    sent: str  # idem
    receiver: str
    on: str
    received: str  # "450", "0-450" for a group; "0, as expected" for a negative control
    lost: str
    loss: str  # "0", "0-1.2"; "-" for a negative control
    jitter: str
    rate: str
    expect: str
    verdict: str  # markup: PASS, FAIL, ERROR
    failed: str  # "2/16" when some members of a group failed, else ""
    outcome: str  # the compact layout's account: "450/450 received, 0 % lost\nexpected: ..."


_FULL = (("scenario", "left"), ("receiver", "left"), ("on", "left"), ("sent", "right"),
         ("received", "right"), ("lost", "right"), ("loss %", "right"),
         ("jitter ms", "right"), ("rate", "right"), ("expected", "left"), ("verdict", "left"))


def print_summary(console: Console, summary: RunSummary) -> None:
    """The full table when the console is wide enough for it unwrapped; else a compact one
    (where the receiver listens under its name, received/sent, loss and the expectation in
    one cell, no jitter or rate) that fits 80 columns without cutting a name; in a console
    too narrow for even that, two lines per row and no table."""
    title = f"run {summary.run} ({summary.backend or '-'}, {summary.status})"
    rows = [row for case in summary.scenarios for row in _case_rows(case)]
    full = _full_table(title, rows)
    compact = _compact_table(title, rows)
    if _measure(console, full).maximum <= console.width:
        console.print(full)
    elif _measure(console, compact).minimum <= console.width:
        console.print(compact)
    else:
        _print_lines(console, title, rows)
    for case in summary.scenarios:
        if case.error:
            console.print(f"[red]{case.name}: error:[/red] {case.error}", markup=True)
        for port in case.ports:
            console.print(f"{case.name}: switch port of {port.host}: {port.packets} packets "
                          f"({port.bytes} bytes) for {case.sent if case.sent is not None else '?'}"
                          f" datagrams sent, expected {port.expect} of the group: "
                          f"{port.verdict.upper()}", markup=False)
        if case.sender_held_back:
            console.print(f"note: {case.name}: the sender reached "
                          f"{_mbps(case.sent_rate_bps)} of the {_mbps(case.rate_bps)} asked "
                          "(the receive path held it back)", markup=False)
    console.print(f"verdict: {_VERDICT.get(summary.verdict, '-')}")


def _mbps(bps: int | None) -> str:
    return "-" if bps is None else f"{bps / 1e6:.3g} Mbit/s"


def _measure(console: Console, table: Table) -> Measurement:
    """maximum: the width with nothing wrapped; minimum: with every cell wrapped at spaces
    as far as it goes (narrower, words are cut)."""
    return console.measure(table, options=console.options.update_width(10_000))


def _full_table(title: str, rows: list[_Row]) -> Table:
    table = Table(title=title, title_justify="left")
    for col, justify in _FULL:
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for r in rows:
        table.add_row(r.case, r.receiver, r.on, r.sent, r.received, r.lost, r.loss, r.jitter,
                      r.rate, r.expect, r.verdict + (f" ({r.failed})" if r.failed else ""))
    return table


def _compact_table(title: str, rows: list[_Row]) -> Table:
    # Names never wrap; only the account column does, at spaces (used only where that
    # column still gets its longest word, so nothing is cut).
    table = Table(title=title, title_justify="left")
    table.add_column("scenario", no_wrap=True)
    table.add_column("receiver", no_wrap=True)
    table.add_column("received")
    table.add_column("verdict", no_wrap=True)
    for r in rows:
        where = Text.assemble(r.receiver, "\n", (r.on, "dim")) if r.on != "-" else r.receiver
        table.add_row(r.case, where, _account(r),
                      r.verdict + (f"\n{r.failed}" if r.failed else ""))
    return table


def _account(r: _Row) -> Text:
    first, _, detail = r.outcome.partition("\n")
    return Text.assemble(first, "\n", (detail, "dim")) if detail else Text(first)


def _print_lines(console: Console, title: str, rows: list[_Row]) -> None:
    console.print(title, markup=False)
    case = ""
    for r in rows:
        case = r.case or case
        verdict = Text.from_markup(r.verdict + (f" ({r.failed})" if r.failed else ""))
        console.print(Text.assemble(f"{case}: {r.receiver} on {r.on}: ", verdict))
        first, _, detail = r.outcome.partition("\n")
        console.print(Text(f"  {first}" + (f"; {detail}" if detail else "")))


def _case_rows(case: CaseOutcome) -> list[_Row]:
    sent = case.sent
    groups = _groups(case.receivers)
    case_verdict = case.verdict
    if not groups:
        return [_Row(case.name, _num(sent), "-", "-", "-", "-", "-", "-", "-", "-",
                     _VERDICT.get(case_verdict, "-"), "",
                     "no receivers" if sent is None else f"sent {sent}, no receivers")]
    rows = []
    # Pods on several nodes name their node(s); on one node, as ever, they do not.
    pod_nodes = {r.host for r in case.receivers if r.placement == "pod"}
    for i, members in enumerate(groups):
        first = members[0]
        nodes = sorted({m.host for m in members})
        on = (f"pod {first.iface}" + (f" on {','.join(nodes)}" if len(pod_nodes) > 1
                                      else "")) if first.placement == "pod" \
            else f"{first.host} {first.iface}"
        name = first.receiver + (f" x{len(members)}" if len(members) > 1 else "")
        expect = first.expect or "-"
        received = _span([m.received for m in members])
        rates = [m.rate_bps for m in members if m.rate_bps]
        jitter = _num(max((m.jitter_ms for m in members if m.jitter_ms is not None),
                          default=None), "{:.3f}")
        rate = f"{min(rates) / 1e6:.2f} Mbit/s" if rates else "-"
        if _expects_nothing(expect):
            # Nothing is lost where nothing should arrive: no lost count, no loss %.
            lost = loss = "-"
            if all(m.received == 0 for m in members):
                received = "0, as expected"
                outcome = "not received, as expected\n" + \
                    ("sent: unknown" if sent is None else f"sent: {sent}")
            else:
                outcome = f"{_of(received, sent)}\nexpected: {expect}"
        else:
            lost = _span([m.lost for m in members])
            loss = _span([m.loss_pct for m in members], "{:g}")
            outcome = _of(received, sent) + ("" if loss == "-" else f", {loss} % lost") + \
                f"\nexpected: {expect}"
        rows.append(_Row(case.name if i == 0 else "", _num(sent) if i == 0 else "",
                         name, on, received, lost, loss, jitter, rate, expect,
                         *_group_verdict(case_verdict, members), outcome))
    return rows


def _of(received: str, sent: int | None) -> str:
    return f"{received} received, sent unknown" if sent is None else \
        f"{received}/{sent} received"


def _expects_nothing(expect: str) -> bool:
    """Expectation.describe() of `receive: false` ("nothing received")."""
    return expect.startswith("nothing")


def _group_verdict(case_verdict: str, members: list[ReceiverOutcome]) -> tuple[str, str]:
    """The group's verdict, and "2/16" when that many of its members failed."""
    # A case that ended in an error has no receiver verdicts worth showing: its receivers
    # were judged (older summaries: "fail") or marked "error" on whatever arrived before.
    if case_verdict == "error" or any(m.verdict == "error" for m in members):
        return _VERDICT["error"], ""
    passed = sum(1 for m in members if m.verdict == "pass")
    if passed == len(members):
        return _VERDICT["pass"], ""
    return _VERDICT["fail"], f"{len(members) - passed}/{len(members)}" if len(members) > 1 \
        else ""


def _groups(receivers: tuple[ReceiverOutcome, ...]) -> list[list[ReceiverOutcome]]:
    """Members of one receiver group (16 fan-out pods) share a table row."""
    groups: dict[str, list[ReceiverOutcome]] = {}
    for r in receivers:
        groups.setdefault(r.receiver, []).append(r)
    return list(groups.values())


def _span(values: list[Any], fmt: str = "{}") -> str:
    known = [v for v in values if v is not None]
    if not known:
        return "-"
    low, high = min(known), max(known)
    return fmt.format(low) if low == high else f"{fmt.format(low)}-{fmt.format(high)}"


def print_status(console: Console, st: LabStatus) -> None:
    table = Table(title=f"lab {st.lab} ({st.backend}): {st.state}", title_justify="left")
    for col in ("host", "state", "address", "detail"):
        table.add_column(col)
    for h in st.hosts:
        table.add_row(h.name, h.state, h.address, h.detail)
    console.print(table)
    if st.pods:
        console.print(f"pods: {', '.join(st.pods)}")
    if st.selfcheck:
        passed = sum(1 for c in st.selfcheck if c.ok)
        console.print(f"self-check: {passed}/{len(st.selfcheck)} passed", markup=False)
        for c in st.selfcheck:
            mark = "ok" if c.ok else ("FAILED" if c.blocking else "warn")
            console.print(f"  {mark} {c.name}: {c.message}", markup=False)
    for problem in st.problems:
        console.print(Text.assemble(("problem: ", "red"), problem))


def print_doctor(console: Console, backend: str, checks: list[Check]) -> None:
    table = Table(title=f"lab doctor: {backend} backend", title_justify="left")
    for col in ("", "check", "finding", "fix"):
        table.add_column(col)
    for ch in checks:
        mark = "[green]ok[/green]" if ch.ok else ("[red]no[/red]" if ch.blocking
                                                 else "[yellow]warn[/yellow]")
        table.add_row(mark, ch.name, ch.message, "" if ch.ok else ch.fix)
    console.print(table)


def print_scenarios(console: Console, folder: str, rows: list[tuple[str, str, str]]) -> None:
    """`lab scenarios`: one row a file; an invalid file shows its first problem."""
    table = Table(title=f"scenarios in {folder}", title_justify="left")
    table.add_column("name", no_wrap=True)
    table.add_column("sends")
    table.add_column("what it shows")
    for name, sends, text in rows:
        table.add_row(name, "[red]invalid[/red]" if sends == "invalid" else sends,
                      text, )
    console.print(table)


def print_igmp(console: Console, lab: str, rows: list[Any]) -> None:
    """`lab igmp`: one row per interface of each host and pod (`lab.report.igmp.Joined`)."""
    table = Table(title=f"IGMP memberships of lab {lab}", title_justify="left")
    for column in ("host or pod", "kind", "interface", "IGMP", "groups joined"):
        table.add_column(column)
    for r in rows:
        groups = ", ".join(g for g in r.groups) or "-"
        table.add_row(Text(r.where), r.kind, Text(r.iface), r.version,
                      Text(r.error, style="red") if r.error else groups)
    console.print(table)


def print_capture(console: Console, point: str, iface: str, path: Any, seen: Any) -> None:
    """What `lab capture` saw (`lab.capture.pcap.CaptureSummary`)."""
    console.print(Text(f"{path}: {seen.packets} packets on {point} {iface}"))
    table = Table(title="IGMP membership reports", title_justify="left")
    for column in ("time s", "from", "group", "IGMP", "kind"):
        table.add_column(column)
    for m in seen.memberships:
        table.add_row(f"{m.time_s:.3f}", m.source, m.group, f"v{m.version}", m.kind)
    console.print(table if seen.memberships else Text("no IGMP membership reports"))
    for group, count in sorted(seen.multicast.items()):
        console.print(Text(f"multicast datagrams to {group}: {count}"))
    if not seen.multicast:
        console.print(Text("no multicast datagrams"))
