"""Scenario files (lab.model.scenario) as they load and as a case describes itself: tests written
to kill the mutants mutmut found surviving. The repository's own scenarios are loaded
against its lab.yaml; malformed inputs are small YAML files written here."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from lab.errors import ConfigError, UsageError
from lab.model.lab import Lab
from lab.model.labfile import load_lab
from lab.model.scenario import Expectation, format_rate, load_scenario, resolve_scenarios
from tests.support import REPO

# Runs on every OS (the GitHub workflow's selection; see README "Every laptop").
pytestmark = pytest.mark.portable


@pytest.fixture
def lab() -> Lab:
    return load_lab(REPO / "lab.yaml")


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Lab:
    """A copy of the repository's lab and scenarios, the working directory inside it."""
    shutil.copy(REPO / "lab.yaml", tmp_path / "lab.yaml")
    shutil.copytree(REPO / "scenarios", tmp_path / "scenarios")
    monkeypatch.chdir(tmp_path)
    return load_lab(tmp_path / "lab.yaml")


def test_a_case_describes_itself_whole(lab: Lab) -> None:
    (case,) = load_scenario(REPO / "scenarios" / "pod-multus.yaml", lab).cases()
    assert case.as_dict() == {
        "name": "pod-multus", "scenario": "pod-multus",
        "description": "Pod with the attachment (eth1-multicast@eth1) receives the group "
                       "on eth1",
        "file": str(REPO / "scenarios" / "pod-multus.yaml"), "group": "224.0.67.67",
        "port": 5001, "rate_bps": 1_050_000, "duration_s": 5, "ttl": 5,
        "receive_buffer": None, "sender": {"host": "mcastsrc", "bind": "192.168.56.12"},
        "receivers": [{"name": "pod-attached", "placement": "pod", "host": "k8s",
                       "iface": "eth1", "count": 1, "attachment": True,
                       "expect": {"receive": True, "min_received_pct": 100.0}}],
        "capture": []}


def test_a_host_receiver_describes_itself(lab: Lab) -> None:
    s = load_scenario(REPO / "scenarios" / "host-baseline.yaml", lab)
    assert [r.as_dict() for r in s.receivers] == [
        {"name": "node-nic", "placement": "host", "host": "k8s", "iface": None, "count": 1,
         "attachment": False, "expect": {"receive": True, "min_received_pct": 100.0}}]
    plain = load_scenario(REPO / "scenarios" / "pod-without-multus.yaml", lab)
    assert [r.as_dict() for r in plain.receivers] == [
        {"name": "pod-plain", "placement": "pod", "host": "k8s", "iface": "eth0", "count": 1,
         "attachment": False, "expect": {"receive": False, "min_received_pct": 100.0}}]


def test_a_rate_list_makes_one_case_per_rate(lab: Lab) -> None:
    s = load_scenario(REPO / "scenarios" / "rate-sweep.yaml", lab)
    assert [(c.name, c.rate) for c in s.cases()] == [
        ("rate-sweep@1M", 1_000_000), ("rate-sweep@10M", 10_000_000),
        ("rate-sweep@50M", 50_000_000), ("rate-sweep@100M", 100_000_000)]
    assert all(c.scenario is s for c in s.cases())
    assert s.receive_buffer == "4M"
    (one,) = load_scenario(REPO / "scenarios" / "fanout.yaml", lab).cases()
    assert (one.name, one.rate, one.scenario.receivers[0].count) == ("fanout", 10_000_000, 16)


@pytest.mark.parametrize(("bps", "shown"), [
    (999, "999"), (1_000, "1k"), (1_500, "1.5k"), (500_000, "500k"), (1_000_000, "1M"),
    (1_050_000, "1.05M"), (1_001_000, "1.001M"), (999_999_000, "999.999M"),
    (1_000_000_000, "1G"), (2_500_000_000, "2.5G"), (10_000_000_000, "10G"),
    (1_000_500_000, "1000.5M"),
])
def test_format_rate(bps: int, shown: str) -> None:
    assert format_rate(bps) == shown


@pytest.mark.parametrize(("expect", "text", "as_dict"), [
    (Expectation(False), "nothing received", {"receive": False, "min_received_pct": 100.0}),
    (Expectation(True), "all received", {"receive": True, "min_received_pct": 100.0}),
    (Expectation(True, 99.5), ">= 99.5 % received",
     {"receive": True, "min_received_pct": 99.5}),
    (Expectation(True, 0.0), ">= 0 % received", {"receive": True, "min_received_pct": 0.0}),
])
def test_expectation(expect: Expectation, text: str, as_dict: dict[str, Any]) -> None:
    assert expect.describe() == text
    assert expect.as_dict() == as_dict


def _scenario(tmp_path: Path, **fields: Any) -> Path:
    data: dict[str, Any] = {
        "name": "t", "group": "224.0.67.67", "sender": {"host": "mcastsrc"},
        "receivers": [{"name": "r", "placement": "pod"}], "expect": {"receive": True}}
    data.update(fields)
    for key in [k for k, v in data.items() if v is None]:
        del data[key]
    path = tmp_path / "t.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _problems(path: Path, lab: Lab) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_scenario(path, lab)
    return [f"{p.key}: {p.message}" for p in info.value.problems]


def test_defaults_of_a_minimal_scenario(tmp_path: Path, lab: Lab) -> None:
    s = load_scenario(_scenario(tmp_path), lab)
    assert (s.name, s.description, s.port, s.rates, s.duration, s.ttl, s.receive_buffer,
            s.sender_host, str(s.sender_bind)) == \
        ("t", "", 5001, (1_050_000,), 5, 5, None, "mcastsrc", "192.168.56.12")
    (r,) = s.receivers
    assert (r.placement, r.host, r.iface, r.count, r.attachment, r.expect) == \
        ("pod", "k8s", "eth1", 1, True, Expectation(True, 100.0))


def test_the_name_defaults_to_the_file_name(tmp_path: Path, lab: Lab) -> None:
    assert load_scenario(_scenario(tmp_path, name=None), lab).name == "t"


def test_a_file_name_that_is_not_a_name_needs_a_name_key(tmp_path: Path, lab: Lab) -> None:
    bad = tmp_path / "Not A Name.yaml"
    _scenario(tmp_path, name=None).rename(bad)
    assert _problems(bad, lab) == ["name: is required"]


@pytest.mark.parametrize(("buffer", "kept"), [
    (262144, "262144"), ("4M", "4M"), ("512K", "512K"), ("1234567", "1234567")])
def test_receive_buffer(tmp_path: Path, lab: Lab, buffer: Any, kept: str) -> None:
    assert load_scenario(_scenario(tmp_path, receive_buffer=buffer), lab).receive_buffer == kept


@pytest.mark.parametrize(("buffer", "message"), [
    (True, "must be a string, not a boolean"),
    ("4G", "'4G' is not a buffer size (examples: 4M, 512K, 262144)"),
    (12345678, "'12345678' is not a buffer size (examples: 4M, 512K, 262144)"),
    (4.5, "must be a string, not a number"),
])
def test_bad_receive_buffer(tmp_path: Path, lab: Lab, buffer: Any, message: str) -> None:
    assert _problems(_scenario(tmp_path, receive_buffer=buffer), lab) == \
        [f"receive_buffer: {message}"]


def test_resolve_every_scenario_of_the_project(project: Lab) -> None:
    assert [s.name for s in resolve_scenarios([], project)] == [
        "fanout", "host-baseline", "pod-multus", "pod-without-multus", "rate-sweep"]


def test_resolve_by_name_by_path_and_by_yml_file(project: Lab, tmp_path: Path) -> None:
    (tmp_path / "elsewhere.yml").write_text(
        (tmp_path / "scenarios" / "host-baseline.yaml").read_text())
    (tmp_path / "scenarios" / "host-baseline.yaml").unlink()
    found = resolve_scenarios(["pod-multus", "scenarios/fanout.yaml", "elsewhere.yml"],
                              project)
    assert [(s.name, s.source) for s in found] == [
        ("pod-multus", tmp_path / "scenarios" / "pod-multus.yaml"),
        ("fanout", tmp_path / "scenarios" / "fanout.yaml"),
        ("host-baseline", tmp_path / "elsewhere.yml")]


def test_resolve_refuses_two_scenarios_of_one_name(project: Lab, tmp_path: Path) -> None:
    shutil.copy(tmp_path / "scenarios" / "fanout.yaml", tmp_path / "again.yml")
    with pytest.raises(ConfigError) as info:
        resolve_scenarios(["fanout", "again.yml", "pod-multus"], project)
    assert str(info.value) == "scenarios: name: two scenarios are named 'fanout'"


def test_resolve_reports_every_bad_file(project: Lab, tmp_path: Path) -> None:
    (tmp_path / "scenarios" / "broken.yaml").write_text("name: broken\nport: 80\n")
    with pytest.raises(ConfigError) as info:
        resolve_scenarios(["broken", "nosuch", "fanout"], project)
    assert [str(p) for p in info.value.problems] == [
        "scenarios/broken.yaml: group: is required",
        "scenarios/broken.yaml: port: 80 is out of range (1024 to 65535)",
        "scenarios/broken.yaml: sender: is required",
        "scenarios/broken.yaml: receivers: is required",
        "scenarios/nosuch.yaml: file not found"]


def test_resolve_without_scenario_files(project: Lab, tmp_path: Path) -> None:
    for path in (tmp_path / "scenarios").glob("*.yaml"):
        path.unlink()
    with pytest.raises(UsageError) as info:
        resolve_scenarios([], project)
    assert str(info.value) == "no scenario files in scenarios"


def _receiver_problems(tmp_path: Path, lab: Lab, receiver: dict[str, Any],
                       **fields: Any) -> list[str]:
    return _problems(_scenario(tmp_path, receivers=[receiver], **fields), lab)


def test_count_and_attachment_apply_to_pods_only(tmp_path: Path, lab: Lab) -> None:
    assert _receiver_problems(tmp_path, lab, {"name": "r", "count": 2, "attachment": False}) \
        == ["receivers[0].count: applies to placement: pod only",
            "receivers[0].attachment: applies to placement: pod only"]


def test_a_host_receiver_on_the_sender_is_refused(tmp_path: Path, lab: Lab) -> None:
    assert _receiver_problems(tmp_path, lab, {"name": "r", "host": "mcastsrc"}) == [
        "receivers[0].host: 'mcastsrc' is the sender; a receiver on the sending host "
        "measures loopback, not the lab network"]


def test_a_host_receiver_defaults(tmp_path: Path, lab: Lab) -> None:
    (r,) = load_scenario(_scenario(tmp_path, receivers=[{"name": "r"}]), lab).receivers
    assert (r.placement, r.host, r.iface, r.count, r.attachment) == ("host", "k8s", None, 1,
                                                                     False)


def test_receive_false_with_a_percentage(tmp_path: Path, lab: Lab) -> None:
    assert _problems(_scenario(tmp_path, expect={"receive": False, "min_received_pct": 0}),
                     lab) == ["expect.min_received_pct: makes no sense with receive: false"]


@pytest.mark.parametrize(("expect", "expected"), [
    ({"min_received_pct": 50}, Expectation(True, 50.0)),
    ({"min_received_pct": 0}, Expectation(True, 0.0)),
    ({"receive": True}, Expectation(True, 100.0)),
    ({"receive": False}, Expectation(False, 100.0)),
])
def test_expectation_defaults(tmp_path: Path, lab: Lab, expect: dict[str, Any],
                              expected: Expectation) -> None:
    (r,) = load_scenario(_scenario(tmp_path, expect=expect), lab).receivers
    assert r.expect == expected


@pytest.mark.parametrize(("expect", "problem"), [
    ({"min_received_pct": "all"}, "expect.min_received_pct: must be a number, not a string"),
    ({"min_received_pct": True}, "expect.min_received_pct: must be a number, not a boolean"),
    ({"min_received_pct": -1}, "expect.min_received_pct: -1 is out of range (0 to 100)"),
    ({"receive": "no"}, "expect.receive: must be true or false, not a string"),
])
def test_bad_expectation(tmp_path: Path, lab: Lab, expect: dict[str, Any],
                         problem: str) -> None:
    problems = _problems(_scenario(tmp_path, expect=expect), lab)
    assert problems[0] == problem


def test_a_receivers_own_expectation_wins(tmp_path: Path, lab: Lab) -> None:
    s = load_scenario(_scenario(tmp_path, receivers=[
        {"name": "a", "placement": "pod"},
        {"name": "b", "placement": "pod", "attachment": False, "expect": {"receive": False}}]),
        lab)
    assert [r.expect for r in s.receivers] == [Expectation(True), Expectation(False)]
    no_default = _scenario(tmp_path, expect=None, receivers=[
        {"name": "a", "placement": "pod", "expect": {"min_received_pct": 90}}])
    (r,) = load_scenario(no_default, lab).receivers
    assert r.expect == Expectation(True, 90.0)


@pytest.mark.parametrize(("port", "ok"), [(1024, True), (65535, True), (1023, False),
                                          (65536, False)])
def test_port_limits(tmp_path: Path, lab: Lab, port: int, ok: bool) -> None:
    path = _scenario(tmp_path, port=port)
    if ok:
        assert load_scenario(path, lab).port == port
    else:
        assert _problems(path, lab) == [f"port: {port} is out of range (1024 to 65535)"]


@pytest.mark.parametrize(("rate", "rates"), [
    (500_000, (500_000,)), (1_000, (1_000,)), ("1k", (1_000,)), ("10G", (10_000_000_000,)),
    (10_000_000_000, (10_000_000_000,)), ("2.5M", (2_500_000,)), (" 3 m ", (3_000_000,)),
    ([1_000, "2k"], (1_000, 2_000)),
])
def test_rates(tmp_path: Path, lab: Lab, rate: Any, rates: tuple[int, ...]) -> None:
    assert load_scenario(_scenario(tmp_path, rate=rate), lab).rates == rates


@pytest.mark.parametrize(("rate", "problems"), [
    (999, ["rate: 999 is out of range (1k to 10G bit/s)"]),
    ("0.999k", ["rate: 0.999k is out of range (1k to 10G bit/s)"]),
    (10_000_000_001, ["rate: 10000000001 is out of range (1k to 10G bit/s)"]),
    ("10.5G", ["rate: 10.5G is out of range (1k to 10G bit/s)"]),
    (True, ["rate: must be a rate such as 1M or 500k"]),
    ("fast", ["rate: 'fast' is not a rate (examples: 1M, 500k, 2.5M, 1G)"]),
    (["1M", True, "2M"], ["rate[1]: must be a rate such as 1M or 500k"]),
])
def test_bad_rates(tmp_path: Path, lab: Lab, rate: Any, problems: list[str]) -> None:
    assert _problems(_scenario(tmp_path, rate=rate), lab) == problems


def test_an_explicit_bind_that_is_the_senders_address(tmp_path: Path, lab: Lab) -> None:
    s = load_scenario(_scenario(tmp_path, sender={"host": "mcastsrc", "bind": "192.168.56.12"}),
                      lab)
    assert str(s.sender_bind) == "192.168.56.12"


def test_descriptions_may_hold_newlines_and_tabs(tmp_path: Path, lab: Lab) -> None:
    s = load_scenario(_scenario(tmp_path, description="two\nlines\tand a tab"), lab)
    assert s.description == "two\nlines\tand a tab"


def test_a_receivers_bad_expectation_is_its_only_problem(tmp_path: Path, lab: Lab) -> None:
    # Without a top-level expect: the bad value is reported, not also "is required".
    path = _scenario(tmp_path, expect=None, receivers=[
        {"name": "r", "placement": "pod", "expect": {"receive": "no"}}])
    assert _problems(path, lab) == [
        "receivers[0].expect.receive: must be true or false, not a string"]


def test_a_receivers_own_receive_false_with_a_percentage(tmp_path: Path, lab: Lab) -> None:
    path = _scenario(tmp_path, receivers=[
        {"name": "r", "placement": "pod", "expect": {"receive": False, "min_received_pct": 5}}])
    assert _problems(path, lab) == [
        "receivers[0].expect.min_received_pct: makes no sense with receive: false"]


def test_an_empty_sender_section_sends_from_the_first_source(tmp_path: Path, lab: Lab) -> None:
    s = load_scenario(_scenario(tmp_path, sender={}), lab)
    assert (s.sender_host, str(s.sender_bind)) == ("mcastsrc", "192.168.56.12")


def test_two_rates_make_two_named_cases(tmp_path: Path, lab: Lab) -> None:
    s = load_scenario(_scenario(tmp_path, rate=["1M", "2M"]), lab)
    assert [c.name for c in s.cases()] == ["t@1M", "t@2M"]


def test_an_argument_with_a_slash_is_a_path_even_without_suffix(project: Lab,
                                                                 tmp_path: Path) -> None:
    (tmp_path / "mine").mkdir()
    shutil.copy(tmp_path / "scenarios" / "fanout.yaml", tmp_path / "mine" / "fanout")
    (s,) = resolve_scenarios(["mine/fanout"], project)
    assert (s.name, s.source) == ("fanout", tmp_path / "mine" / "fanout")


def test_an_empty_receiver_expectation_is_refused_not_dropped(tmp_path: Path, lab: Lab) -> None:
    """`expect: {}` on the only receiver, no expectation at the top: once the receiver was
    silently dropped and the scenario loaded with no receivers."""
    path = tmp_path / "empty-expect.yaml"
    path.write_text("name: e\ngroup: 224.0.67.67\nsender: {host: mcastsrc}\n"
                    "receivers:\n  - {name: r, placement: pod, expect: {}}\n")
    assert _problems(path, lab) == ["receivers[0].expect: is empty: give receive: true or false"]
