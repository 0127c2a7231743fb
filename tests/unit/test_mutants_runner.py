"""The runner's verdict code (lab.run.runner.judge, _outcome, _receiver_outcome) and the run's
overall verdict (lab.run.artifacts.overall_verdict), pinned down to the values and keys the
summary carries: tests written to kill the mutants mutmut found surviving.

Receiver outputs are real captured iperf 2.1.8 reports (tests/data/iperf); the sender
counts are those of the same captured streams.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import pytest
import yaml

from lab.model.labfile import load_lab
from lab.model.scenario import Case, Expectation, ReceiverSpec, load_scenario
from lab.run import runner
from lab.run.outcome import CaseOutcome, ReceiverOutcome, overall_verdict
from lab.run.runner import Endpoint, _outcome, _receiver_outcome, judge
from tests.support import REPO

# Runs on every OS (the GitHub workflow's selection; see README "Every laptop").
pytestmark = pytest.mark.portable

DATA = REPO / "tests" / "data" / "iperf"
FIVE_M = (DATA / "server-2s-5M.csv").read_text()  # 895 datagrams, a final report
SENT_5M = 895  # as parse_client_sent reports the sender of that stream ("Sent 896")


# judge ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("expect", "sent", "received", "verdict"), [
    # A negative control passes only when nothing at all arrived.
    (Expectation(False), 100, 0, "pass"),
    (Expectation(False), 100, 1, "fail"),
    (Expectation(False), None, 0, "pass"),
    # Without a sender count there is nothing to compare with.
    (Expectation(True), None, 0, "fail"),
    (Expectation(True), None, 50, "fail"),
    (Expectation(True), 0, 0, "fail"),
    # 100 %: one datagram short fails, all of them pass.
    (Expectation(True), 1000, 1000, "pass"),
    (Expectation(True), 1000, 999, "fail"),
    # 99.9 % of 1000 is exactly 999: the boundary itself passes.
    (Expectation(True, 99.9), 1000, 999, "pass"),
    (Expectation(True, 99.9), 1000, 998, "fail"),
    # 50 % of 1000: 400 is short (a threshold divided instead of multiplied would pass it).
    (Expectation(True, 50), 1000, 400, "fail"),
    (Expectation(True, 50), 1000, 500, "pass"),
    # 33.5 % of 3 is 1.005 datagrams: 1 is short; the tolerance is for float error only.
    (Expectation(True, 33.5), 3, 1, "fail"),
    (Expectation(True, 33.5), 3, 2, "pass"),
    # A long stream (10 million datagrams, about two minutes at 1 Gbit/s) received whole
    # passes at 100 %: at that size the float tolerance is below one ulp.
    (Expectation(True), 10_000_000, 10_000_000, "pass"),
    (Expectation(True), 10_000_000, 9_999_999, "fail"),
])
def test_judge(expect: Expectation, sent: int | None, received: int, verdict: str) -> None:
    assert judge(expect, sent, received) == verdict


# overall_verdict -------------------------------------------------------------------------

@pytest.mark.parametrize(("verdicts", "overall"), [
    ([], "none"),
    (["pass"], "pass"),
    (["pass", "pass"], "pass"),
    (["pass", "fail"], "fail"),
    (["fail"], "fail"),
    (["error"], "error"),
    (["pass", "error"], "error"),
    (["fail", "error", "pass"], "error"),
])
def test_overall_verdict(verdicts: list[str], overall: str) -> None:
    assert overall_verdict([_case_outcome(f"c{i}", v) for i, v in enumerate(verdicts)]) \
        == overall


def _case_outcome(name: str, verdict: str) -> CaseOutcome:
    return CaseOutcome(name=name, scenario=name, file="s.yaml", verdict=verdict, error=None,
                       group="224.0.67.67", rate_bps=1, duration_s=1, sent=1, elapsed_s=1.0,
                       receivers=())


def _d(outcome: ReceiverOutcome | CaseOutcome) -> dict:
    """An outcome as summary.json holds it, but for the per-second rows (tested apart)."""
    data = dataclasses.asdict(outcome)
    data.pop("intervals", None)
    for r in data.get("receivers", ()):
        r.pop("intervals")
    return data


# _receiver_outcome and _outcome ------------------------------------------------------------

def _case(tmp_path: Path, receivers: list[dict[str, object]],
          expect: dict[str, object] | None = None) -> Case:
    lab = load_lab(REPO / "lab.yaml")
    path = tmp_path / "verdicts.yaml"
    path.write_text(yaml.safe_dump({
        "name": "verdicts", "group": "224.0.67.67", "port": 5001, "rate": "5M",
        "duration": 2, "ttl": 5, "sender": {"host": "mcastsrc"}, "receivers": receivers,
        "expect": expect or {"receive": True, "min_received_pct": 100}}))
    (case,) = load_scenario(path, lab).cases()
    return case


def _endpoint(spec: ReceiverSpec, output: str, *, name: str | None = None,
              iface: str = "eth1", reported: bool = True) -> Endpoint:
    return Endpoint(name=name or spec.name, spec=spec, host=None,  # type: ignore[arg-type]
                    iface=iface, output=output, collected=True,
                    reported_before_stop=reported)


def test_receiver_outcome_of_a_whole_stream(tmp_path: Path) -> None:
    case = _case(tmp_path, [{"name": "pods", "placement": "pod", "count": 2}])
    spec = case.scenario.receivers[0]
    out = _d(_receiver_outcome(_endpoint(spec, FIVE_M, name="pods-1"), SENT_5M))
    assert out == {
        "name": "pods-1", "receiver": "pods", "placement": "pod", "host": "k8s",
        "iface": "eth1", "attachment": True, "received": 895, "lost": 0, "loss_pct": 0.0,
        "iperf_lost": 0, "jitter_ms": 0.002, "rate_bps": 5254710, "complete": True,
        "expect": "all received", "verdict": "pass"}


def test_receiver_outcome_counts_loss_against_the_sender(tmp_path: Path) -> None:
    case = _case(tmp_path, [{"name": "nic", "placement": "host"}],
                 expect={"receive": True, "min_received_pct": 99})
    spec = case.scenario.receivers[0]
    out = _d(_receiver_outcome(_endpoint(spec, FIVE_M), 900))  # 5 datagrams never arrived
    assert (out["received"], out["lost"], out["loss_pct"]) == (895, 5, 0.556)
    assert (out["placement"], out["attachment"], out["expect"], out["verdict"]) == \
        ("host", False, ">= 99 % received", "pass")
    # 3 of 7: the percentage keeps three decimals.
    three = _d(_receiver_outcome(_endpoint(spec, FIVE_M), 898))
    assert (three["lost"], three["loss_pct"]) == (3, 0.334)


def test_receiver_outcome_never_counts_more_than_sent_as_lost(tmp_path: Path) -> None:
    case = _case(tmp_path, [{"name": "nic", "placement": "host"}])
    spec = case.scenario.receivers[0]
    # The receiver counted more than the sender reported (it missed the marker): no loss.
    out = _d(_receiver_outcome(_endpoint(spec, FIVE_M), 890))
    assert (out["lost"], out["loss_pct"], out["verdict"]) == (0, 0.0, "pass")


def test_receiver_outcome_without_a_sender_count(tmp_path: Path) -> None:
    case = _case(tmp_path, [{"name": "nic", "placement": "host"}])
    spec = case.scenario.receivers[0]
    out = _d(_receiver_outcome(_endpoint(spec, FIVE_M), None))
    assert (out["received"], out["lost"], out["loss_pct"], out["verdict"]) == \
        (895, None, None, "fail")
    nothing = _d(_receiver_outcome(_endpoint(spec, ""), 0))
    assert (nothing["received"], nothing["lost"], nothing["loss_pct"], nothing["jitter_ms"],
            nothing["rate_bps"], nothing["verdict"]) == (0, 0, None, None, 0, "fail")


def test_a_report_that_came_only_with_sigterm_is_not_complete(tmp_path: Path) -> None:
    case = _case(tmp_path, [{"name": "nic", "placement": "host"}])
    spec = case.scenario.receivers[0]
    assert _d(_receiver_outcome(_endpoint(spec, FIVE_M, reported=True), SENT_5M))["complete"]
    assert not _d(_receiver_outcome(_endpoint(spec, FIVE_M, reported=False), SENT_5M))["complete"]
    # Intervals only (receiver stopped before any summary): incomplete whatever was seen.
    intervals = "\n".join(FIVE_M.splitlines()[:2])
    assert not _d(_receiver_outcome(_endpoint(spec, intervals, reported=True), SENT_5M))["complete"]


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> float:
    now = 1_700_000_010.123456
    monkeypatch.setattr(runner.time, "time", lambda: now)
    return now


def test_outcome_of_a_passing_case(tmp_path: Path, clock: float) -> None:
    case = _case(tmp_path, [{"name": "nic", "placement": "host"}])
    spec = case.scenario.receivers[0]
    out = _d(_outcome(case, [_endpoint(spec, FIVE_M)], SENT_5M, None, 1_700_000_000.0))
    receivers = out.pop("receivers")
    assert out == {"name": "verdicts", "scenario": "verdicts",
                   "file": str(tmp_path / "verdicts.yaml"), "verdict": "pass", "error": None,
                   "group": "224.0.67.67", "rate_bps": 5_000_000, "duration_s": 2,
                   "sent": SENT_5M, "elapsed_s": 10.123, "captures": (),
                   "sent_rate_bps": round(SENT_5M * 1470 * 8 / 2), "ports": ()}
    assert [r["verdict"] for r in receivers] == ["pass"]


def test_outcome_fails_when_any_receiver_fails(tmp_path: Path, clock: float) -> None:
    case = _case(tmp_path, [{"name": "a", "placement": "host"},
                            {"name": "b", "placement": "pod", "attachment": False}])
    a, b = case.scenario.receivers
    out = _d(_outcome(case, [_endpoint(a, FIVE_M), _endpoint(b, "", iface="eth0")], SENT_5M,
                   None, clock - 1))
    assert out["verdict"] == "fail"
    assert [r["verdict"] for r in out["receivers"]] == ["pass", "fail"]


def test_outcome_without_receivers_is_not_a_pass(tmp_path: Path, clock: float) -> None:
    case = _case(tmp_path, [{"name": "nic", "placement": "host"}])
    assert _d(_outcome(case, [], SENT_5M, None, clock))["verdict"] == "fail"


def test_an_error_judges_no_receiver_but_keeps_the_counts(tmp_path: Path, clock: float) -> None:
    case = _case(tmp_path, [{"name": "a", "placement": "host"},
                            {"name": "b", "placement": "pod", "attachment": False}])
    a, b = case.scenario.receivers
    out = _d(_outcome(case, [_endpoint(a, FIVE_M), _endpoint(b, "", iface="eth0")], SENT_5M,
                   "deleting pods failed", clock - 0.5))
    assert (out["verdict"], out["error"], out["elapsed_s"]) == \
        ("error", "deleting pods failed", 0.5)
    assert [(r["received"], r["verdict"]) for r in out["receivers"]] == \
        [(895, "error"), (0, "error")]


def test_elapsed_time_is_kept_to_the_millisecond(tmp_path: Path) -> None:
    case = _case(tmp_path, [{"name": "nic", "placement": "host"}])
    started = time.time() - 2.0
    elapsed = _d(_outcome(case, [], None, None, started))["elapsed_s"]
    assert 2.0 <= elapsed < 60 and elapsed == round(elapsed, 3)


def test_receiver_outcome_keeps_the_per_second_rows(tmp_path: Path) -> None:
    case = _case(tmp_path, [{"name": "nic", "placement": "host"}])
    out = _receiver_outcome(_endpoint(case.scenario.receivers[0], FIVE_M), SENT_5M)
    # The two interval lines of the captured stream, not its final 0.0-2.0 report.
    assert [(r.start_s, r.end_s, r.received, r.lost, r.rate_bps) for r in out.intervals] == \
        [(0.0, 1.0, 447, 0, 5256720.0), (1.0, 2.0, 446, 0, 5244960.0)]
    assert out.intervals[0].jitter_ms == 0.003


def test_two_streams_add_up_in_each_second() -> None:
    other = FIVE_M.replace("10.0.0.12,35691", "10.0.0.13,40000")
    report = runner.iperf.parse_server_csv(FIVE_M + other)
    assert [(r.received, r.rate_bps) for r in report.intervals] == \
        [(894, 10513440.0), (892, 10489920.0)]


def test_summary_json_round_trips_with_its_schema(tmp_path: Path) -> None:
    from lab.run.outcome import RunSummary, read_summary, to_json, write_summary

    case = _case(tmp_path, [{"name": "nic", "placement": "host"}])
    outcome = _outcome(case, [_endpoint(case.scenario.receivers[0], FIVE_M)], SENT_5M, None,
                       time.time())
    summary = RunSummary(run="r", lab="l", backend="netns", lab_file="lab.yaml",
                         started="s", finished=None, status="complete", verdict="pass",
                         scenarios=(outcome,))
    write_summary(tmp_path, summary)
    assert read_summary(tmp_path) == summary
    data = to_json(summary)
    assert list(data)[0] == "schema" and data["schema"] == 1
    assert "recovered" not in data and "note" not in data
    assert len(data["scenarios"][0]["receivers"][0]["intervals"]) == 2


def test_a_summary_of_a_newer_schema_is_refused_by_name(tmp_path: Path) -> None:
    import json

    from lab.errors import UsageError
    from lab.run.outcome import read_summary

    (tmp_path / "summary.json").write_text(json.dumps({"schema": 2}))
    with pytest.raises(UsageError, match=r"summary\.json is not a summary .*schema 2"):
        read_summary(tmp_path)


class _VersionHost:
    """FAKE host, named as such: answers `iperf --version` as a given iperf would (two
    iperf versions cannot both be installed on this machine). Real 2.1.8 wording."""

    def __init__(self, name: str, version: str) -> None:
        self.name = name
        self.version = version
        self.asked = 0

    def run(self, argv: list[str], **kwargs: object) -> object:
        from lab.command import Result

        self.asked += 1
        return Result(tuple(argv), 1, "", f"iperf version {self.version} (date) pthreads\n",
                      0.01, 15)


def test_a_case_whose_ends_run_different_iperf_versions_is_refused(tmp_path: Path) -> None:
    from lab.errors import BackendError

    case = _case(tmp_path, [{"name": "pods", "placement": "pod", "count": 3}])
    spec = case.scenario.receivers[0]
    pods = [_VersionHost(f"pods-{i}", "2.0.13a") for i in range(3)]
    endpoints = [Endpoint(f"pods-{i}", spec, host, "eth1")  # type: ignore[arg-type]
                 for i, host in enumerate(pods)]
    sender = _VersionHost("mcastsrc", "2.1.8")
    with pytest.raises(BackendError, match=r"iperf versions differ \(mcastsrc 2\.1, pods-0 "
                       r"2\.0\).*same iperf at both ends"):
        runner._same_iperf(sender, endpoints)  # type: ignore[arg-type]
    assert [p.asked for p in pods] == [1, 0, 0]  # one member of the group is asked
    same = [_VersionHost("pods-0", "2.1.8")]
    runner._same_iperf(sender, [Endpoint("pods-0", spec, same[0], "eth1")])  # type: ignore


def test_a_report_of_mismatched_iperf_versions_makes_the_case_an_error(tmp_path: Path,
                                                                        clock: float) -> None:
    """Real output of a 2.0.13a receiver of a 2.1.8 sender: not a 100 % loss FAIL, an
    error that says what is wrong (and no receiver verdict that blames the network)."""
    mixed = (DATA / "2.0.13a" / "receiver-2.0.13a-from-sender-2.1.8.csv").read_text()
    case = _case(tmp_path, [{"name": "nic", "placement": "host"}])
    out = _outcome(case, [_endpoint(case.scenario.receivers[0], mixed)], 271, None, clock)
    assert out.verdict == "error" and out.error is not None
    assert out.error.startswith("nic: the final report from 192.168.77.12 counts 2147483377")
    assert "run the same iperf at both ends" in out.error
    assert [r.verdict for r in out.receivers] == ["error"]


# Ports of the lab switch (expect_port) ---------------------------------------------------

@pytest.mark.parametrize("expect, packets, nbytes, sent, verdict", [
    ("all", 895, 10**6, 895, "pass"), ("all", 894, 10**7, 895, "fail"),
    ("none", 30, 13_156, 895, "pass"),  # 1 % of 895 x 1470 bytes = 13156.5
    ("none", 30, 13_157, 895, "fail"), ("none", 0, 0, None, "fail"), ("all", 5, 0, 0, "fail"),
])
def test_judge_port(expect: str, packets: int, nbytes: int, sent: int | None,
                    verdict: str) -> None:
    from lab.run.outcome import judge_port

    assert judge_port(expect, packets, nbytes, sent, 1470) == verdict


def _port_case(tmp_path: Path) -> Case:
    lab = yaml.safe_load((REPO / "examples" / "multinode" / "lab.yaml").read_text())
    (tmp_path / "lab.yaml").write_text(yaml.safe_dump(lab))
    path = tmp_path / "ports.yaml"
    path.write_text(yaml.safe_dump({
        "name": "ports", "group": "224.0.67.67", "port": 5001, "rate": "5M", "duration": 2,
        "sender": {"host": "mcastsrc"}, "receivers": [{"name": "nic", "host": "k8s"}],
        "expect": {"receive": True},
        "expect_port": [{"host": "k8s", "traffic": "all"},
                        {"host": "k8s-3", "traffic": "none"}]}))
    (case,) = load_scenario(path, load_lab(tmp_path / "lab.yaml")).cases()
    return case


def test_a_port_that_carried_the_group_fails_the_case_its_receivers_passed(
        tmp_path: Path, clock: float) -> None:
    case = _port_case(tmp_path)
    ep = [_endpoint(case.scenario.receivers[0], FIVE_M)]
    good = _outcome(case, ep, SENT_5M, None, clock, (), {"k8s": (SENT_5M + 3, 1_400_000),
                                                          "k8s-3": (12, 900)})
    assert good.verdict == "pass" and [p.verdict for p in good.ports] == ["pass", "pass"]
    flooded = _outcome(case, ep, SENT_5M, None, clock, (), {"k8s": (SENT_5M, 1_400_000),
                                                             "k8s-3": (SENT_5M, 1_350_000)})
    assert flooded.verdict == "fail" and flooded.receivers[0].verdict == "pass"
    assert [(p.host, p.packets, p.verdict) for p in flooded.ports] == [
        ("k8s", SENT_5M, "pass"), ("k8s-3", SENT_5M, "fail")]
    unread = _outcome(case, ep, SENT_5M, None, clock, (), {})
    assert unread.verdict == "error" and "port counters were not read" in str(unread.error)
    assert {p.verdict for p in unread.ports} == {"error"}


def test_ports_round_trip_through_summary_json_and_are_absent_without_them(
        tmp_path: Path, clock: float) -> None:
    from lab.run.outcome import RunSummary, read_summary, to_json, write_summary

    case = _port_case(tmp_path)
    ep = [_endpoint(case.scenario.receivers[0], FIVE_M)]
    with_ports = _outcome(case, ep, SENT_5M, None, clock, (), {"k8s": (900, 1),
                                                                "k8s-3": (1, 1)})
    plain = _outcome(_case(tmp_path, [{"name": "nic", "placement": "host"}]),
                     [_endpoint(_case(tmp_path, [{"name": "nic", "placement": "host"}])
                                .scenario.receivers[0], FIVE_M)], SENT_5M, None, clock)
    summary = RunSummary(run="r", lab="l", backend="netns", lab_file="lab.yaml",
                         started="s", finished=None, status="complete", verdict="pass",
                         scenarios=(with_ports, plain))
    write_summary(tmp_path, summary)
    assert read_summary(tmp_path) == summary
    data = to_json(summary)
    assert [p["host"] for p in data["scenarios"][0]["ports"]] == ["k8s", "k8s-3"]
    assert "ports" not in data["scenarios"][1]
