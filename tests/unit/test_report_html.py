"""`lab report` on summaries of real runs (tests/data/summaries/seed-run.json: the seed's
scenarios, a 16-pod fan-out and a four-rate sweep on the netns backend): the page, its
plots, and the data behind every plot compared with the summary it was drawn from. The
page in a real browser, on a real demo run, is tests/integration/test_show.py."""

from __future__ import annotations

import copy
import csv
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from lab.report.html import changes, write_report
from lab.run.outcome import from_json, read_summary
from tests.support import base_lab

# Runs on every OS (the GitHub workflow's selection; see README "Every laptop").
pytestmark = pytest.mark.portable

DATA = Path(__file__).resolve().parent.parent / "data" / "summaries"


def _run_folder(root: Path, name: str, data: dict[str, Any]) -> Path:
    folder = root / "results" / name
    folder.mkdir(parents=True)
    (folder / "summary.json").write_text(json.dumps({**data, "run": name}))
    return folder


def _csv(path: Path) -> list[dict[str, str]]:
    with path.open() as handle:
        return list(csv.DictReader(handle))


def _num(text: str) -> float | None:
    return None if text == "" else float(text)


def _lab(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    (cwd / "lab.yaml").write_text(yaml.safe_dump(base_lab()))
    return subprocess.run([sys.executable, "-m", "lab", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=120)


@pytest.fixture(scope="module")
def seed_report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    data = json.loads((DATA / "seed-run.json").read_text())
    folder = _run_folder(tmp_path_factory.mktemp("report"), "20260101-000000-run", data)
    summary = read_summary(folder)
    write_report(folder, summary)
    return folder, summary


def test_the_page_is_whole_in_one_file(seed_report: tuple[Path, Any]) -> None:
    folder, summary = seed_report
    page = (folder / "report.html").read_text()
    # No fetch of anything: every image is inline, no script, no stylesheet link.
    assert not re.search(r"""(src|href)=["']?(https?:|//)""", page)
    assert "<script" not in page and "<link" not in page
    images = re.findall(r'<img alt="([^"]+)" src="data:image/png;base64,', page)
    assert len(images) == 4, images  # received, loss, sweep, jitter (no per-second rows)
    for case in summary.scenarios:
        assert f'id="case-{case.name}"' in page
    assert "This run did not record its lab" in page  # a run older than lab.json
    assert sorted(p.name for p in (folder / "plots").iterdir()) == sorted(
        f"{n}.{ext}" for n in ("received", "loss", "sweep", "jitter") for ext in ("png", "csv"))
    for png in (folder / "plots").glob("*.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_every_plotted_number_is_the_summarys(seed_report: tuple[Path, Any]) -> None:
    folder, summary = seed_report
    pairs = [(c, r) for c in summary.scenarios for r in c.receivers]
    received = _csv(folder / "plots" / "received.csv")
    assert [(row["case"], row["receiver"]) for row in received] == \
        [(c.name, r.name) for c, r in pairs]
    for row, (c, r) in zip(received, pairs, strict=True):
        assert int(row["received"]) == r.received and int(row["sent"]) == c.sent
        assert row["attachment"] == str(r.attachment) and row["placement"] == r.placement
    for row, (_, r) in zip(_csv(folder / "plots" / "loss.csv"), pairs, strict=True):
        assert _num(row["loss_pct"]) == r.loss_pct
    jitter = _csv(folder / "plots" / "jitter.csv")
    assert [(row["case"], row["receiver"], float(row["jitter_ms"])) for row in jitter] == \
        [(c.name, r.name, r.jitter_ms) for c, r in pairs if r.jitter_ms is not None]
    sweep = _csv(folder / "plots" / "sweep.csv")
    swept = [(c, r) for c, r in pairs if c.scenario == "rate-sweep"]
    assert len(swept) == 4
    assert [(row["case"], int(row["rate_bps"]), _num(row["loss_pct"])) for row in sweep] == \
        [(c.name, c.rate_bps, r.loss_pct) for c, r in sorted(swept, key=lambda p: p[0].rate_bps)]


def test_a_sender_held_back_is_said_on_the_page(tmp_path: Path) -> None:
    data = json.loads((DATA / "seed-run.json").read_text())
    for case in data["scenarios"]:
        case["sent_rate_bps"] = case["rate_bps"] * (6 if case["name"] == "pod-multus" else 10) // 10
    folder = _run_folder(tmp_path, "20260101-000000-run", data)
    page = write_report(folder, read_summary(folder)).read_text()
    assert page.count("under the rate asked") == 1
    multus = page[page.index('id="case-pod-multus"'):]
    assert "0.63 Mbit/s reached: <span" in multus[:600]


def test_two_runs_side_by_side_say_what_changed(tmp_path: Path) -> None:
    a = json.loads((DATA / "seed-run.json").read_text())
    b = copy.deepcopy(a)
    multus = next(c for c in b["scenarios"] if c["name"] == "pod-multus")
    multus["verdict"] = "fail"
    (r,) = multus["receivers"]
    r.update(received=r["received"] - 45, lost=45, loss_pct=10.0, verdict="fail")
    b["scenarios"] = [c for c in b["scenarios"] if c["name"] != "fanout"]
    _run_folder(tmp_path, "20260101-000000-run", a)
    _run_folder(tmp_path, "20260102-000000-run", b)
    proc = _lab(tmp_path, "report", "results/20260101-000000-run",
                "results/20260102-000000-run")
    assert proc.returncode == 0, proc.stderr
    page_path = Path(proc.stdout.strip())
    assert page_path == (tmp_path / "results/20260101-000000-run/compare-20260102-000000-run"
                         / "report.html")
    page = page_path.read_text()
    assert "verdict PASS → FAIL; pod-attached loss 0 % → 10 %" in page
    assert "Only in one run (not compared): fanout" in page
    rows = _csv(page_path.parent / "plots" / "compare-loss.csv")
    assert {"case": "pod-multus", "receiver": "pod-attached", "loss_pct_a": "0.0",
            "loss_pct_b": "10.0"} in rows
    ca, cb = (from_json(x).scenarios for x in (a, b))
    host = next(c for c in ca if c.name == "host-baseline")
    assert changes(host, next(c for c in cb if c.name == "host-baseline")) == ["no change"]


def test_bad_input_exits_2_naming_what_is_wrong(tmp_path: Path) -> None:
    data = json.loads((DATA / "seed-run.json").read_text())
    _run_folder(tmp_path, "20260101-000000-run", data)
    other = {**data, "scenarios": [dict(data["scenarios"][0], name="something-else")]}
    _run_folder(tmp_path, "20260102-000000-run", other)
    (tmp_path / "notarun").mkdir()
    cases = {
        ("report", "nowhere"): "lab: error: nowhere is not a run folder (no such directory)",
        ("report", "notarun"): "lab: error: notarun has no summary.json",
        ("report", "results/20260101-000000-run", "results/20260102-000000-run"):
            "have no scenario in common (A ran host-baseline, pod-multus",
        ("report", "a", "b", "c"): "lab report takes one run, or two to compare, not 3",
    }
    for args, said in cases.items():
        proc = _lab(tmp_path, *args)
        assert proc.returncode == 2 and said in proc.stderr, (args, proc.stderr)
        assert "Traceback" not in proc.stderr and proc.stdout == ""
    # Hosts and pods of a lab that is not up: named, nothing started.
    for args, said in ((("capture", "nosuch"), "no host or pod 'nosuch' in lab mcast now "
                        "(hosts: none: is the lab up?"),
                       (("igmp",), "lab mcast is not up; run `lab up` first")):
        proc = _lab(tmp_path, *args)
        assert proc.returncode == 2 and said in proc.stderr, (args, proc.stderr)
    # Without a run there is nothing to report.
    empty = tmp_path / "empty"
    empty.mkdir()
    proc = _lab(empty, "report")
    assert proc.returncode == 2 and "no runs in" in proc.stderr, proc.stderr
