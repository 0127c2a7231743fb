"""Showing the lab, for real on the netns backend: a real `lab demo --record` whose
report is opened in real headless Chromium; captures with real tcpdump during the seed's
pod scenarios; `lab igmp` while receivers are joined; `lab capture` by hand; two real
runs side by side."""

from __future__ import annotations

import csv
import html
import json
import os
import re
import select
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image

from lab.report.recording import read_cast
from lab.run.outcome import RunSummary, read_summary
from tests.integration.browser import CHROMIUM, RequestTrap, open_page, request_host
from tests.integration.observe import Paused
from tests.support import REPO, Project, make_project

pytestmark = [pytest.mark.netns,
              pytest.mark.skipif(os.geteuid() != 0, reason="needs root for namespaces")]

ARTIFACTS = Path(os.environ.get("LAB_TEST_ARTIFACTS", REPO / "test-artifacts"))
GROUP = "224.0.67.67"
PLOT_ALTS = {  # the demo's plots: no rate sweep among the seed's scenarios
    "Bar chart: datagrams received by each receiver against the datagrams sent",
    "Bar chart: percentage of sent datagrams each receiver lost",
    "Line chart: each receiver's throughput per second over the run",
    "Bar chart: jitter in milliseconds of each receiver that got data"}


@dataclass
class Demo:
    project: Project
    proc: subprocess.CompletedProcess[str]
    folder: Path
    summary: RunSummary
    record: Path


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    project = make_project(tmp_path_factory.mktemp("demo") / "proj")
    record = project.dir / "recording"
    try:
        proc = project.lab("demo", "--record", str(record), timeout=400)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        (folder,) = sorted((project.dir / "results").glob("[0-9]*"))
        yield Demo(project, proc, folder, read_summary(folder), record)
    finally:
        project.lab("destroy", timeout=120)


def test_demo_writes_the_report_and_prints_its_path(demo: Demo) -> None:
    page = demo.folder / "report.html"
    assert f"report: {page}" in demo.proc.stderr
    assert [c.name for c in demo.summary.scenarios] == ["host-baseline", "pod-multus",
                                                         "pod-without-multus"]
    lab = json.loads((demo.folder / "lab.json").read_text())
    assert [(h["name"], h["address"], h["nic"]) for h in lab["hosts"]] == [
        ("mcastsrc", "192.168.56.12", "eth1"), ("k8s", "192.168.56.11", "eth1")]
    assert '"master": "eth1"' in lab["nad"]


def test_the_request_trap_tells_a_request_from_an_unused_connection() -> None:
    """Chromium opens proxy sockets ahead of need and may close them unused: that is no
    request of the page's; a request line is one, and is refused."""
    import socket

    trap = RequestTrap()
    try:
        socket.create_connection(("127.0.0.1", trap.port), timeout=5).close()
        with socket.create_connection(("127.0.0.1", trap.port), timeout=5) as c:
            c.sendall(b"GET http://example.invalid/a.png HTTP/1.1\r\nHost: example.invalid"
                      b"\r\n\r\n")
            answer = c.recv(100)
    finally:
        trap.close()
    # The trap serves one connection at a time, in order: the unused one came first.
    assert answer.startswith(b"HTTP/1.1 403")
    assert trap.requests == ["GET http://example.invalid/a.png HTTP/1.1"]
    assert trap.unused == 1


@pytest.mark.skipif(CHROMIUM is None, reason="needs chromium (scripts/setup --test)")
def test_a_page_that_fetches_anything_is_caught(tmp_path: Path) -> None:
    """The check the report's test relies on can fail: a page with an image from
    elsewhere shows that request (refused by the trap: nothing leaves the machine)."""
    page = tmp_path / "fetches.html"
    page.write_text('<html><body><img src="http://example.invalid/x.png"></body></html>')
    _, requests = open_page(page.as_uri(), tmp_path / "shot.png", 200, 200)
    assert {request_host(r) for r in requests} == {"example.invalid"}, requests


@pytest.mark.skipif(CHROMIUM is None, reason="needs chromium (scripts/setup --test)")
def test_the_report_in_headless_chromium(demo: Demo) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "report-demo-netns.png"
    dom, requests = open_page((demo.folder / "report.html").as_uri(), shot)
    print(f"\nscreenshot: {shot}")
    assert requests == [], requests  # nothing fetched: the page is whole
    images = re.findall(r'<img alt="([^"]+)" src="(data:[^;"]+);base64,', dom)
    assert {html.unescape(alt) for alt, _ in images} == PLOT_ALTS, images
    assert len(images) == 4 and {kind for _, kind in images} == {"data:image/png"}
    for case in demo.summary.scenarios:
        assert f'id="case-{case.name}"' in dom
    assert "Verdict: <span class=\"pass\">PASS</span>" in dom
    # The plots were drawn on screen: the bars' colour is in the screenshot.
    with Image.open(shot) as picture:
        assert picture.size == (1280, 4000)
        colours = {c for _, c in picture.convert("RGB").getcolors(maxcolors=1 << 20) or []}
    assert (0x1F, 0x6F, 0xB4) in colours  # a pod with the attachment
    assert (0x6B, 0x6B, 0x6B) in colours  # the host NIC


def test_the_plots_numbers_are_the_outcomes(demo: Demo) -> None:
    plots = demo.folder / "plots"
    rows = {name: list(csv.DictReader((plots / f"{name}.csv").open()))
            for name in ("received", "loss", "throughput", "jitter")}
    pairs = [(c, r) for c in demo.summary.scenarios for r in c.receivers]
    assert [(row["case"], row["receiver"], int(row["sent"]), int(row["received"]))
            for row in rows["received"]] == [(c.name, r.name, c.sent, r.received)
                                             for c, r in pairs]
    assert [float(row["loss_pct"]) for row in rows["loss"]] == [r.loss_pct for _, r in pairs]
    assert [(row["receiver"], float(row["jitter_ms"])) for row in rows["jitter"]] == \
        [(r.name, r.jitter_ms) for _, r in pairs if r.jitter_ms is not None]
    per_second = [(c.name, r.name, i.end_s, i.rate_bps, i.received) for c, r in pairs
                  for i in r.intervals]
    assert len(per_second) >= 10  # two receivers got data for 5 s
    assert [(row["case"], row["receiver"], float(row["end_s"]), float(row["rate_bps"]),
             int(row["received"])) for row in rows["throughput"]] == per_second


def test_the_recorded_demo_replays_to_its_verdict_table(demo: Demo) -> None:
    header, events = read_cast(demo.record / "demo.cast")
    assert header["version"] == 2 and header["width"] == 150
    assert all(e[1] == "o" for e in events) and events[-1][0] > 5  # real timings
    shown = "".join(str(e[2]) for e in events).replace("\r\n", "\n")
    # The table exactly as the run printed it, in one piece, and the steps before it.
    table = demo.proc.stdout
    assert table.strip() and table in shown, (table, shown[-2000:])
    assert "pod-without-multus" in table and "verdict: PASS" in table
    assert shown.index("pod-multus: send 5 s") < shown.index(table)
    svg = (demo.record / "demo.svg").read_text()
    assert svg.startswith("<svg")
    text = html.unescape(svg).replace("\xa0", " ")
    for word in ("host-baseline", "pod-without-multus", "node-nic", "PASS", "verdict"):
        assert word in text, word


SCENARIOS = {
    "pod-multus": "capture: [pod-attached, k8s]\n",
    "pod-without-multus": "capture: [pod-plain, k8s]\n",
}


@pytest.fixture(scope="module")
def captured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Project, Path]]:
    project = make_project(tmp_path_factory.mktemp("capture") / "proj")
    for name, extra in SCENARIOS.items():
        path = project.dir / "scenarios" / f"{name}.yaml"
        path.write_text(path.read_text() + extra)
    try:
        project.lab("up", check_codes=(0,))
        run = project.lab("run", "--report", "pod-multus", "pod-without-multus", timeout=300)
        assert run.returncode == 0, run.stdout + run.stderr
        (folder,) = sorted((project.dir / "results").glob("[0-9]*"))
        yield project, folder
    finally:
        project.lab("destroy", timeout=120)


def test_a_capture_sees_the_pods_join_and_every_datagram(
        captured: tuple[Project, Path]) -> None:
    _, folder = captured
    cases = {c.name: c for c in read_summary(folder).scenarios}
    multus = cases["pod-multus"]
    (pod,) = multus.receivers
    at = {c.point: c for c in multus.captures}
    assert (at["pod-attached"].iface, at["k8s"].iface) == ("eth1", "eth1")
    for point in ("pod-attached", "k8s"):
        c = at[point]
        assert c.error is None and (folder / c.file).stat().st_size > 0
        joins = [m for m in c.igmp if m.group == GROUP and m.kind == "join"]
        # The pod's own join, from its attachment address, on the lab side too.
        assert joins and {m.source for m in joins} == {joins[0].source}, c.igmp
        assert joins[0].source.startswith("192.168.56.") and joins[0].version == 3
    assert at["pod-attached"].datagrams == pod.received == multus.sent
    # Without the attachment the pod joins on eth0 (the pod network) and nothing of it
    # reaches the lab side: no report there, and the pod gets no datagram.
    plain = cases["pod-without-multus"]
    at = {c.point: c for c in plain.captures}
    assert [m.group for m in at["pod-plain"].igmp if m.kind == "join"][:1] == [GROUP]
    assert at["pod-plain"].igmp[0].source.startswith("10.244.")
    assert at["pod-plain"].datagrams == 0 == plain.receivers[0].received
    assert [m for m in at["k8s"].igmp if m.group == GROUP] == []
    assert at["k8s"].datagrams == plain.sent  # the stream was there, on the node's NIC
    page = (folder / "report.html").read_text()
    assert f"IGMPv3 join {GROUP}" in page and "capture-pod-attached.pcap" in page


def test_lab_igmp_shows_the_groups_joined_while_a_run_holds(
        captured: tuple[Project, Path]) -> None:
    project, _ = captured
    paused = Paused(project, "run-joined", "run", "pod-multus")
    try:
        paused.wait()
        shown = project.lab("igmp", "--json", check_codes=(0,))
        table = project.lab("igmp", check_codes=(0,))
    finally:
        code, out, err = paused.finish(timeout=120)
    assert code == 0, out + err
    rows = {(r["name"], r["iface"]): r for r in json.loads(shown.stdout)}
    assert rows[("pod-attached", "eth1")]["kind"] == "pod"
    assert GROUP in rows[("pod-attached", "eth1")]["groups"]
    assert rows[("pod-attached", "eth1")]["igmp_version"] == "V3"
    assert GROUP not in rows[("k8s", "eth1")]["groups"]
    assert GROUP not in rows[("mcastsrc", "eth1")]["groups"]
    assert "224.0.0.1" in rows[("k8s", "eth1")]["groups"]  # all-hosts, always joined
    assert "pod-attached" in table.stdout and GROUP in table.stdout
    # After the run the pod is gone, and so is its row.
    after = json.loads(project.lab("igmp", "--json", check_codes=(0,)).stdout)
    assert {r["name"] for r in after} == {"mcastsrc", "k8s"}


def test_lab_capture_by_hand(captured: tuple[Project, Path]) -> None:
    project, _ = captured
    proc = subprocess.Popen(
        [sys.executable, "-m", "lab", "-f", str(project.lab_file), "capture", "k8s",
         "--count", "30", "--seconds", "120", "--", "igmp", "or", "udp"],
        cwd=project.dir, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "COLUMNS": "150"})
    try:
        said = _read_until(proc, "listening on k8s eth1", 60)
        run = project.lab("run", "host-baseline", timeout=300)
        assert run.returncode == 0, run.stdout + run.stderr
        out, err = proc.communicate(timeout=120)  # ends by itself: 30 packets
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, said + out + err
    (pcap_file,) = (project.dir / ".lab" / project.name / "captures").glob("k8s-*.pcap")
    assert f"{pcap_file}: 30 packets on k8s eth1" in out
    assert re.search(rf"192\.168\.56\.11 +│ {re.escape(GROUP)} +│ v3 +│ join", out), out
    assert re.search(rf"multicast datagrams to {re.escape(GROUP)}: \d+", out), out
    # Nothing left on the node: the file was fetched and removed there.
    assert not list(Path("/tmp").glob(f"{project.name}-capture-k8s-*.pcap"))


def _read_until(proc: subprocess.Popen[str], text: str, timeout: float) -> str:
    """stderr of `proc` until `text` appears (the observable state: tcpdump listens)."""
    assert proc.stderr is not None
    seen = ""
    fd = proc.stderr.fileno()
    os.set_blocking(fd, False)
    deadline = time.monotonic() + timeout
    while text not in seen:
        left = deadline - time.monotonic()
        if left <= 0 or proc.poll() is not None:
            raise AssertionError(f"not seen: {text!r} in {seen!r}")
        ready, _, _ = select.select([fd], [], [], min(left, 1.0))
        if ready:
            seen += os.read(fd, 65536).decode(errors="replace")
    os.set_blocking(fd, True)
    return seen


def test_two_real_runs_side_by_side(demo: Demo, captured: tuple[Project, Path]) -> None:
    project, folder = captured
    proc = project.lab("report", str(demo.folder), str(folder), check_codes=(0,))
    page = Path(proc.stdout.strip())
    assert page.parent == demo.folder / f"compare-{folder.name}"
    text = page.read_text()
    for case in ("pod-multus", "pod-without-multus"):
        assert f"<td>{case}</td>" in text
    assert "Only in one run (not compared): host-baseline" in text
