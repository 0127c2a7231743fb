"""Tables for people: run summaries, lab status, doctor checks."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from lab.backends.base import LabStatus
from lab.doctor import Check

_VERDICT = {"pass": "[green]PASS[/green]", "fail": "[red]FAIL[/red]",
            "error": "[red]ERROR[/red]", "none": "-"}


def _num(value: Any, fmt: str = "{}") -> str:
    return "-" if value is None else fmt.format(value)


def print_summary(console: Console, summary: dict[str, Any]) -> None:
    table = Table(title=f"run {summary.get('run')} ({summary.get('backend')}, "
                        f"{summary.get('status')})", title_justify="left")
    for col, justify in (("scenario", "left"), ("receiver", "left"), ("on", "left"),
                         ("sent", "right"), ("received", "right"), ("lost", "right"),
                         ("loss %", "right"), ("jitter ms", "right"), ("rate", "right"),
                         ("expected", "left"), ("verdict", "left")):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for case in summary.get("scenarios", []):
        groups = _groups(case.get("receivers") or [])
        if not groups:
            table.add_row(case["name"], "-", "-", _num(case.get("sent")), "-", "-", "-", "-",
                          "-", "-", _VERDICT.get(case["verdict"], "-"))
        for i, members in enumerate(groups):
            first = members[0]
            on = f"pod {first['iface']}" if first["placement"] == "pod" \
                else f"{first['host']} {first['iface']}"
            name = first["receiver"] + (f" x{len(members)}" if len(members) > 1 else "")
            passed = sum(1 for m in members if m["verdict"] == "pass")
            verdict = _VERDICT["pass" if passed == len(members) else "fail"]
            if len(members) > 1 and passed != len(members):
                verdict += f" ({len(members) - passed}/{len(members)})"
            rates = [m["rate_bps"] for m in members if m.get("rate_bps")]
            table.add_row(
                case["name"] if i == 0 else "", name, on,
                _num(case.get("sent")) if i == 0 else "",
                _span([m.get("received") for m in members]),
                _span([m.get("lost") for m in members]),
                _span([m.get("loss_pct") for m in members], "{:g}"),
                _num(max((m["jitter_ms"] for m in members if m.get("jitter_ms") is not None),
                         default=None), "{:.3f}"),
                f"{min(rates) / 1e6:.2f} Mbit/s" if rates else "-",
                first.get("expect", "-"), verdict)
    console.print(table)
    for case in summary.get("scenarios", []):
        if case.get("error"):
            console.print(f"[red]{case['name']}: error:[/red] {case['error']}", markup=True)
    console.print(f"verdict: {_VERDICT.get(summary.get('verdict', 'none'), '-')}")


def _groups(receivers: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Members of one receiver group (16 fan-out pods) share a table row."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in receivers:
        groups.setdefault(r.get("receiver", r["name"]), []).append(r)
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


def print_doctor(console: Console, backend: str, checks: list[Check]) -> None:
    table = Table(title=f"lab doctor: {backend} backend", title_justify="left")
    for col in ("", "check", "finding", "fix"):
        table.add_column(col)
    for ch in checks:
        mark = "[green]ok[/green]" if ch.ok else ("[red]no[/red]" if ch.blocking
                                                 else "[yellow]warn[/yellow]")
        table.add_row(mark, ch.name, ch.message, "" if ch.ok else ch.fix)
    console.print(table)
