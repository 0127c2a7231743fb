"""The iperf2 parsers (lab.run.iperf), field by field: tests written to kill the mutants mutmut
found surviving. Inputs are the real captured iperf 2.1.8 reports of tests/data/iperf, or
lines of them cut or changed as a receiver stopped at another moment would have printed
them (each such change is named where it is made)."""

from __future__ import annotations

import ipaddress

import pytest

from lab.run import iperf
from tests.support import REPO

# Runs on every OS (the GitHub workflow's selection; see README "Every laptop").
pytestmark = pytest.mark.portable

DATA = REPO / "tests" / "data" / "iperf"


def lines(name: str) -> list[str]:
    return (DATA / name).read_text().splitlines()


def with_fields(line: str, **changes: str) -> str:
    """A captured CSV line with some of its fields replaced (names as in lab/iperf.py)."""
    index = {"interval": 6, "bytes": 7, "bps": 8, "jitter": 9, "lost": 10, "total": 11}
    parts = line.split(",")
    for field, value in changes.items():
        parts[index[field]] = value
    return ",".join(parts)


# parse_server_csv: the final report ----------------------------------------------------

def test_final_report_fields() -> None:
    (s,) = iperf.parse_server_csv("\n".join(lines("server-2s-5M.csv"))).streams
    assert s == iperf.StreamReport(source="10.0.0.12", received=895, lost=0, total=895,
                                   jitter_ms=0.002, rate_bps=5254710.0, seconds=2.0,
                                   complete=True)


def test_final_report_with_loss_names_the_sender_and_subtracts_the_loss() -> None:
    report = iperf.parse_server_csv("\n".join(lines("server-two-streams.csv")))
    assert [(s.source, s.received, s.lost, s.total, s.seconds) for s in report.streams] == \
        [("10.0.0.12", 271, 0, 271, 3.0), ("10.0.0.12", 89, 4, 93, 1.0)]


def test_a_final_report_where_every_datagram_was_lost_counts_none_received() -> None:
    # The one-second stream's final line, with all 93 datagrams counted lost.
    final = with_fields(lines("server-two-streams.csv")[5], lost="93")
    (s,) = iperf.parse_server_csv(final + "\n" + final).streams
    assert (s.received, s.lost, s.total, s.complete) == (0, 93, 93, True)


def test_a_stream_shorter_than_a_second_has_only_its_final_report() -> None:
    # iperf prints no interval line for a stream that ends within its first second: the
    # first and only line is the final report (here a 0.5 s stream).
    final = with_fields(lines("server-sigterm-mid-stream.csv")[2], interval="0.0-0.5")
    assert iperf.has_final_report(final)
    (s,) = iperf.parse_server_csv(final).streams
    assert (s.complete, s.seconds, s.received) == (True, 0.5, 43)


def test_a_one_second_interval_alone_is_not_a_final_report() -> None:
    first = lines("server-two-streams.csv")[4]  # the 1 s stream, its final line missing
    assert not iperf.has_final_report(first)
    assert iperf.has_final_report(first + "\n" + first)


# parse_server_csv: no final report, intervals summed -------------------------------------

def test_intervals_without_a_final_report_are_summed_field_by_field() -> None:
    # Stopped at 2.5 s, before its summary line: three intervals (0-1, 1-2, 2-2.5 s).
    text = "\n".join(lines("server-sigterm-mid-stream.csv")[:3])
    (s,) = iperf.parse_server_csv(text).streams
    assert s == iperf.StreamReport(
        source="192.168.56.12", received=92 + 90 + 43, lost=0, total=225,
        jitter_ms=0.006,  # the last interval's
        rate_bps=(135240 + 132300 + 63210) * 8 / 2.5, seconds=2.5, complete=False)
    assert s.complete is False
    assert not iperf.has_final_report(text)


def test_interval_loss_is_subtracted_from_the_total() -> None:
    # The one-second stream whose receiver stopped before repeating its line as the final.
    (s,) = iperf.parse_server_csv(lines("server-two-streams.csv")[4]).streams
    assert (s.received, s.lost, s.total, s.complete) == (89, 4, 93, False)
    assert s.rate_bps == 130830 * 8 / 1.0


def test_intervals_are_timed_from_the_first_one_present() -> None:
    # The 2-3 s interval alone (the earlier ones were not in the captured output).
    (s,) = iperf.parse_server_csv(lines("server-3s-then-sigterm.csv")[2]).streams
    assert (s.seconds, s.rate_bps, s.received) == (1.0, 130830 * 8 / 1.0, 89)


def test_intervals_that_counted_nothing_mean_nothing_received() -> None:
    stalled = [with_fields(line, bytes="0", bps="0", lost="0", total="0")
               for line in lines("server-3s-then-sigterm.csv")[1:3]]
    (s,) = iperf.parse_server_csv("\n".join(stalled)).streams
    assert (s.received, s.lost, s.total, s.rate_bps, s.seconds) == (0, 0, 0, 0.0, 2.0)


def test_a_zero_length_interval_has_no_rate() -> None:
    # iperf2 can end on an empty interval whose start and end are the same second.
    empty = with_fields(lines("server-3s-then-sigterm.csv")[2], interval="3.0-3.0",
                        bytes="0", bps="0", total="0")
    (s,) = iperf.parse_server_csv(empty).streams
    assert (s.seconds, s.rate_bps, s.received, s.complete) == (0.0, 0.0, 0, False)


# _parse_line -----------------------------------------------------------------------------

def test_the_out_of_order_field_is_not_needed() -> None:
    # 14 fields; the 14th (out-of-order count) is not used, so a line without it is read,
    # while a line cut before the loss percentage is not.
    full = lines("server-2s-5M.csv")[2]
    without_ooo = full.rsplit(",", 1)[0]
    assert iperf.parse_server_csv(without_ooo).received == 895
    assert iperf.parse_server_csv(without_ooo.rsplit(",", 1)[0]).streams == ()


# parse_client_sent -----------------------------------------------------------------------

def test_a_sender_that_sent_only_its_end_marker_sent_no_data() -> None:
    text = (DATA / "client-3s.txt").read_text().replace("Sent 272 datagrams",
                                                         "Sent 1 datagrams")
    assert iperf.parse_client_sent(text) == 0


# parse_igmp ------------------------------------------------------------------------------

HEADER = "Idx\tDevice    : Count Querier\tGroup    Users Timer\tReporter\n"
LO = "1\tlo        :     1      V3\n\t\t\t\t010000E0     1 0:00000000\t\t0\n"
ETH1 = ("2\teth1      :     2      V3\n\t\t\t\t434300E0     1 0:00000000\t\t0\n"
        "\t\t\t\t010000E0     1 0:00000000\t\t0\n")
ETH0 = "3\teth0      :     1      V3\n\t\t\t\t010000E0     1 0:00000000\t\t0\n"
ALL_HOSTS = ipaddress.IPv4Address("224.0.0.1")
GROUP = ipaddress.IPv4Address("224.0.67.67")


def test_igmp_table_every_device_and_group() -> None:
    assert iperf.parse_igmp(HEADER + LO + ETH1 + ETH0) == {
        "lo": {ALL_HOSTS}, "eth1": {GROUP, ALL_HOSTS}, "eth0": {ALL_HOSTS}}


def test_igmp_group_lines_before_any_device_are_ignored() -> None:
    # A table read from its middle: the first group lines belong to no device we know.
    orphan = "\t\t\t\t434300E0     1 0:00000000\t\t0\n"
    assert iperf.parse_igmp(HEADER + orphan + ETH0) == {"eth0": {ALL_HOSTS}}


def test_igmp_blank_and_garbled_lines_do_not_end_the_table() -> None:
    garbled_group = "\t\t\t\tnot-hex     1 0:00000000\t\t0\n"
    text = HEADER + LO + "\n" + garbled_group + ETH1 + "   \n" + ETH0
    assert iperf.parse_igmp(text) == {
        "lo": {ALL_HOSTS}, "eth1": {GROUP, ALL_HOSTS}, "eth0": {ALL_HOSTS}}


def test_igmp_a_device_line_without_a_name_ends_the_previous_device() -> None:
    # Its group lines must not be credited to eth1.
    text = HEADER + ETH1 + "4\n\t\t\t\t444400E0     1 0:00000000\t\t0\n"
    assert iperf.parse_igmp(text) == {"eth1": {GROUP, ALL_HOSTS}}


def test_igmp_device_names_of_ten_characters_or_more() -> None:
    text = HEADER + "5\tverylongif0:     2      V3\n\t\t\t\t434300E0     1 0:00000000\t\t0\n"
    assert GROUP in iperf.parse_igmp(text).get("verylongif0", set())
