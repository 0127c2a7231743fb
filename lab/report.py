"""Tables for people: run summaries, lab status, doctor checks."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from lab.backends.base import LabStatus
from lab.doctor import Check
from lab.scenario import format_rate

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
        rows = case.get("receivers") or [{}]
        for i, r in enumerate(rows):
            on = "-" if not r else (f"pod {r['iface']}" if r["placement"] == "pod"
                                    else f"{r['host']} {r['iface']}")
            table.add_row(
                case["name"] if i == 0 else "",
                r.get("name", "-"), on,
                _num(case.get("sent")) if i == 0 else "",
                _num(r.get("received")), _num(r.get("lost")), _num(r.get("loss_pct"), "{:g}"),
                _num(r.get("jitter_ms"), "{:.3f}"),
                format_rate(r["rate_bps"]) + "bit/s" if r.get("rate_bps") else "-",
                r.get("expect", "-"),
                _VERDICT.get(r.get("verdict", case["verdict"]), "-"))
    console.print(table)
    for case in summary.get("scenarios", []):
        if case.get("error"):
            console.print(f"[red]{case['name']}: error:[/red] {case['error']}", markup=True)
    console.print(f"verdict: {_VERDICT.get(summary.get('verdict', 'none'), '-')}")


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
