"""Run summaries as people read them (lab/report.py), on summaries captured from real runs.

tests/data/summaries/seed-run.json: `lab run host-baseline pod-multus pod-without-multus
fanout rate-sweep` on the netns backend; interrupted-pod-multus.json: `lab run pod-multus`
sent SIGTERM while its sender ran. Variants the lab cannot be made to produce on demand (a
negative control that receives, the runner's newer per-receiver "error" verdict) are
derived from them in the tests below.
"""

from __future__ import annotations

import copy
import io
import json
import re
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from lab.report.console import print_summary
from lab.run.outcome import from_json

# Runs on every OS (the GitHub workflow's selection; see README "Every laptop").
pytestmark = pytest.mark.portable

DATA = Path(__file__).resolve().parent.parent / "data" / "summaries"
WIDTHS = (150, 80)  # full table first: old and new layouts differ most at 80
VERDICT_WORDS = ("PASS", "FAIL", "ERROR")


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((DATA / name).read_text())
    return data


def render(summary: dict[str, Any], width: int) -> str:
    """The summary as `lab results` reads it from summary.json (lab.run.outcome)."""
    console = Console(width=width, record=True, force_terminal=False, file=io.StringIO())
    print_summary(console, from_json(summary))
    return console.export_text()


def whole(word: str, text: str) -> bool:
    """`word` appears with no name character glued to either side (rate-sweep@1M is not
    rate-sweep@10M, pod-multus is not pod-without-multus)."""
    return re.search(rf"(?<![\w@.-]){re.escape(word)}(?![\w@.-])", text) is not None


def cells(line: str) -> list[str]:
    return [c.strip() for c in re.split("[│┃]", line.strip().strip("│┃"))]


def case_blocks(text: str) -> dict[str, str]:
    """Table body lines by case: a case starts on the line whose first cell names it and
    runs until the next line with something in the first cell (or the end of the table)."""
    blocks: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        if not line.startswith("│"):
            current = None
            continue
        first = cells(line)[0]
        if first:
            current = blocks.setdefault(first, [])
        if current is not None:
            current.append(line)
    return {name: "\n".join(lines) for name, lines in blocks.items()}


def verdict_words(block: str) -> set[str]:
    return {w for w in VERDICT_WORDS if whole(w, block)}


def expected_words(case: dict[str, Any]) -> set[str]:
    if case["verdict"] == "error":
        return {"ERROR"}
    return {r["verdict"].upper() for r in case["receivers"]}


FIXTURES = ("seed-run.json", "interrupted-pod-multus.json")


@pytest.mark.parametrize("fixture", FIXTURES)
def test_nothing_is_cut_at_80_or_150_columns(fixture: str) -> None:
    summary = load(fixture)
    for width in WIDTHS:
        text = render(summary, width)
        assert "…" not in text, f"{width} columns:\n{text}"
        assert max(len(line) for line in text.splitlines()) <= width, text
        for case in summary["scenarios"]:
            assert whole(case["name"], text), (case["name"], width, text)
            for r in case["receivers"]:
                assert whole(r["receiver"], text), (r["receiver"], width, text)
        for header in ("scenario", "receiver", "verdict"):
            assert whole(header, text), (header, width, text)


def test_full_table_when_there_is_room_compact_at_80() -> None:
    summary = load("seed-run.json")
    wide = render(summary, 150)
    header = next(line for line in wide.splitlines() if "scenario" in line)
    assert cells(header) == ["scenario", "receiver", "on", "sent", "received", "lost",
                             "loss %", "jitter ms", "rate", "expected", "verdict"]
    assert "1.05 Mbit/s" in wide and "0.004" in wide
    narrow = render(summary, 80)
    assert "…" not in narrow and "jitter ms" not in narrow
    blocks = case_blocks(narrow)
    # received/sent and where the receiver listens are still there
    assert "450/450" in blocks["host-baseline"] and "k8s eth1" in blocks["host-baseline"]
    assert "25513/25513" in blocks["rate-sweep@100M"]
    assert "4255/4255" in blocks["fanout"] and whole("fan x16", blocks["fanout"])


@pytest.mark.parametrize("fixture", FIXTURES)
def test_each_row_has_its_case_verdict(fixture: str) -> None:
    summary = load(fixture)
    overall = {"pass": "PASS", "fail": "FAIL", "error": "ERROR"}[summary["verdict"]]
    for width in WIDTHS:
        text = render(summary, width)
        blocks = case_blocks(text)
        for case in summary["scenarios"]:
            assert case["name"] in blocks, (case["name"], width, text)
            assert verdict_words(blocks[case["name"]]) == expected_words(case), \
                (case["name"], width, text)
        assert f"verdict: {overall}" in text.splitlines()[-1]


def test_negative_control_reads_as_expected_not_as_loss() -> None:
    summary = load("seed-run.json")
    case = next(c for c in summary["scenarios"] if c["name"] == "pod-without-multus")
    assert case["receivers"][0]["expect"] == "nothing received"
    assert case["receivers"][0]["loss_pct"] == 100.0  # what the old table showed
    for width in WIDTHS:
        text = render(summary, width)
        block = case_blocks(text)["pod-without-multus"]
        assert "as expected" in block, (width, text)
        assert not re.search(r"(?<![\d.])100(?![\d.])", block), (width, text)
        assert verdict_words(block) == {"PASS"}, (width, text)
        # 450 is what was sent; nowhere is it shown as lost
        assert "lost" not in block and not _loss_cells(text, block, width), (width, text)


def test_negative_control_that_received_shows_the_count_and_fail() -> None:
    summary = load("seed-run.json")
    case = next(c for c in summary["scenarios"] if c["name"] == "pod-without-multus")
    r = case["receivers"][0]
    r.update(received=450, lost=0, loss_pct=0.0, jitter_ms=0.01, rate_bps=1047000,
             verdict="fail")
    case["verdict"] = summary["verdict"] = "fail"
    for width in WIDTHS:
        text = render(summary, width)
        assert "…" not in text, (width, text)
        block = case_blocks(text)["pod-without-multus"]
        assert verdict_words(block) == {"FAIL"}, (width, text)
        assert "as expected" not in block, (width, text)
        assert re.search(r"(?<![\d.])450(/450)?(?![\d.])", block.replace("│", " ")), block
        # "0 lost, 0 %" would read as a success
        assert "lost" not in block and not _loss_cells(text, block, width), (width, text)


def _loss_cells(text: str, block: str, width: int) -> list[str]:
    """The lost and loss % cells of the block's first row, but "-" ones (full table only)."""
    header = next(line for line in text.splitlines() if line.startswith("┃"))
    row = dict(zip(cells(header), cells(block.splitlines()[0]), strict=False))
    return [row[k] for k in ("lost", "loss %") if k in row and row[k] != "-"]


def _with_receiver_verdict_error(summary: dict[str, Any]) -> dict[str, Any]:
    """The runner's newer form: receivers of an errored case carry verdict "error"."""
    summary = copy.deepcopy(summary)
    for case in summary["scenarios"]:
        if case["verdict"] == "error":
            for r in case["receivers"]:
                r["verdict"] = "error"
    return summary


@pytest.mark.parametrize("form", ("receiver verdict fail", "receiver verdict error"))
def test_interrupted_case_rows_show_error(form: str) -> None:
    summary = load("interrupted-pod-multus.json")
    assert summary["scenarios"][0]["receivers"][0]["verdict"] == "fail"  # as captured
    if form == "receiver verdict error":
        summary = _with_receiver_verdict_error(summary)
    for width in WIDTHS:
        text = render(summary, width)
        block = case_blocks(text)["pod-multus"]
        assert verdict_words(block) == {"ERROR"}, (width, text)
        assert not whole("FAIL", text), (width, text)
        assert "pod-multus: error: interrupted by SIGTERM" in text, (width, text)
        assert text.splitlines()[-1] == "verdict: ERROR"


def test_errored_case_whose_receivers_passed_shows_error() -> None:
    """An error after the receivers had everything (e.g. stopping them failed) still makes
    the case, and so its rows, ERROR; other cases keep their own verdicts."""
    summary = load("seed-run.json")
    fanout = next(c for c in summary["scenarios"] if c["name"] == "fanout")
    fanout.update(verdict="error", error="stopping the receivers failed")
    summary["verdict"] = "error"
    for width in WIDTHS:
        text = render(summary, width)
        assert "…" not in text, (width, text)
        blocks = case_blocks(text)
        assert verdict_words(blocks["fanout"]) == {"ERROR"}, (width, text)
        assert verdict_words(blocks["host-baseline"]) == {"PASS"}, (width, text)
        assert "fanout: error: stopping the receivers failed" in text


def test_group_with_some_members_failing() -> None:
    summary = load("seed-run.json")
    fanout = next(c for c in summary["scenarios"] if c["name"] == "fanout")
    for member in fanout["receivers"][:2]:
        member.update(received=4000, lost=255, loss_pct=5.993, verdict="fail")
    fanout["verdict"] = summary["verdict"] = "fail"
    for width in WIDTHS:
        text = render(summary, width)
        assert "…" not in text, (width, text)
        block = case_blocks(text)["fanout"]
        assert verdict_words(block) == {"FAIL"}, (width, text)
        assert "2/16" in block and "4000-4255" in block, (width, text)


def test_console_too_narrow_for_any_table_lists_rows_without_cutting() -> None:
    summary = load("seed-run.json")
    text = render(summary, 50)
    assert "…" not in text and max(len(line) for line in text.splitlines()) <= 50, text
    flat = " ".join(text.split())  # lines may wrap at spaces, never inside a word
    for case in summary["scenarios"]:
        assert re.search(rf"(?<![\w@-]){re.escape(case['name'])}: "
                         rf"{re.escape(case['receivers'][0]['receiver'])}(?: x16)? on "
                         r"[\w ]+?: PASS", flat), (case["name"], text)
    assert "not received, as expected" in flat


def test_a_sender_held_back_below_its_rate_is_said() -> None:
    """bclim -1 delivers in the sender's own receive path, which slows it down instead of
    the receivers losing: a PASS at a lower rate than asked must say so."""
    summary = load("seed-run.json")
    case = next(c for c in summary["scenarios"] if c["name"] == "pod-multus")
    case["sent_rate_bps"] = 600_000  # of 1.05 Mbit/s asked
    host = next(c for c in summary["scenarios"] if c["name"] == "host-baseline")
    host["sent_rate_bps"] = 1_049_000
    text = render(summary, 150)
    assert ("note: pod-multus: the sender reached 0.6 Mbit/s of the 1.05 Mbit/s asked "
            "(the receive path held it back)") in text
    assert "note: host-baseline" not in text
