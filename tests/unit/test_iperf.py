"""Parsers on real iperf 2.1.8 output captured between namespaces (tests/data/iperf)."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from lab.run import iperf

# Runs on every OS (the GitHub workflow's selection; see README "Every laptop").
pytestmark = pytest.mark.portable

DATA = Path(__file__).resolve().parent.parent / "data" / "iperf"


def read(name: str) -> str:
    return (DATA / name).read_text()


def test_final_report_of_a_two_second_stream() -> None:
    report = iperf.parse_server_csv(read("server-2s-5M.csv"))
    assert len(report.streams) == 1
    s = report.streams[0]
    assert (s.received, s.lost, s.total, s.complete) == (895, 0, 895, True)
    assert s.jitter_ms == 0.002
    assert s.rate_bps == 5254710.0


def test_two_streams_one_of_one_second_whose_final_repeats_the_interval() -> None:
    report = iperf.parse_server_csv(read("server-two-streams.csv"))
    assert [(s.received, s.lost, s.complete) for s in report.streams] == \
        [(271, 0, True), (89, 4, True)]
    assert report.received == 360
    assert report.lost == 4


def test_intervals_without_final_report_are_summed_and_marked_incomplete() -> None:
    lines = read("server-2s-5M.csv").splitlines()[:2]  # the sender was killed after 2 s
    report = iperf.parse_server_csv("\n".join(lines))
    assert not report.complete
    assert report.received == 447 + 446
    assert not iperf.has_final_report("\n".join(lines))
    assert iperf.has_final_report(read("server-2s-5M.csv"))


def test_no_output_means_nothing_received() -> None:
    report = iperf.parse_server_csv("")
    assert report.received == 0 and report.streams == () and report.jitter_ms is None


def test_garbage_lines_are_ignored() -> None:
    text = "bind failed: Address in use\n" + read("server-2s-5M.csv") + "1,2,3\n"
    assert iperf.parse_server_csv(text).received == 895


def test_sender_count_excludes_the_end_of_stream_marker() -> None:
    # "Sent 272 datagrams" while the receiver counted 271: the marker is not data.
    assert iperf.parse_client_sent(read("client-3s.txt")) == 271
    assert iperf.parse_client_sent("connect failed: Network is unreachable") is None


def test_igmp_table() -> None:
    text = ("Idx\tDevice    : Count Querier\tGroup    Users Timer\tReporter\n"
            "1\tlo        :     1      V3\n\t\t\t\t010000E0     1 0:00000000\t\t0\n"
            "2\teth1      :     2      V3\n\t\t\t\t434300E0     1 0:00000000\t\t0\n"
            "\t\t\t\t010000E0     1 0:00000000\t\t0\n"
            "3\teth0      :     1      V3\n\t\t\t\t010000E0     1 0:00000000\t\t0\n")
    joined = iperf.parse_igmp(text)
    assert ipaddress.IPv4Address("224.0.67.67") in joined["eth1"]
    assert ipaddress.IPv4Address("224.0.67.67") not in joined["eth0"]


def test_argv_binds_the_group_to_the_interface() -> None:
    g = ipaddress.IPv4Address("224.0.67.67")
    server = iperf.server_argv(g, "eth1", 5001, 30, "4M")
    assert server[server.index("-B") + 1] == "224.0.67.67%eth1"
    assert server[-2:] == ["-w", "4M"]
    client = iperf.client_argv(g, 5001, 5, 5, 1_050_000, ipaddress.IPv4Address("192.168.56.12"))
    assert client[client.index("-B") + 1] == "192.168.56.12"
    assert client[client.index("--ttl") + 1] == "5"


def test_a_summary_printed_on_sigterm_looks_like_a_final_report() -> None:
    """Captured from iperf 2.1.8: a receiver stopped mid-stream (2.5 s of a 4 s send)
    prints a whole-stream line that the parser cannot tell from the end-of-stream report.
    That is why the runner judges completeness from the output before its SIGTERM."""
    text = (DATA / "server-sigterm-mid-stream.csv").read_text()
    report = iperf.parse_server_csv(text)
    assert report.received == 225 and report.complete
    before_sigterm = "".join(text.splitlines(keepends=True)[:2])  # the whole-second rows
    assert not iperf.has_final_report(before_sigterm)
    assert iperf.parse_server_csv(before_sigterm).received == 182


def test_a_stream_that_ended_whole_has_its_final_report() -> None:
    text = (DATA / "server-3s-then-sigterm.csv").read_text()
    assert iperf.has_final_report(text)
    assert iperf.parse_server_csv(text).received == 271  # "Sent 272" less the end marker


# iperf 2.0.13a (the seed image's line) against 2.1.8: real output, tests/data/iperf/2.0.13a
V20 = DATA / "2.0.13a"


def test_a_2_0_receiver_of_a_2_0_sender_counts_right() -> None:
    report = iperf.parse_server_csv((V20 / "receiver-2.0.13a-from-sender-2.0.13a.csv")
                                    .read_text())
    # The sender is found though 2.0 prints the group first; the empty second stream that
    # 2.0 opens from the end-of-stream datagrams is no stream.
    (stream,) = report.streams
    assert (stream.source, stream.received, stream.lost, stream.complete) == \
        ("192.168.77.12", 268, 0, True)
    assert report.inconsistent is None
    assert [r.received for r in report.intervals] == [90, 89, 89]
    # 2.0 says "Sent 268" for 268 data datagrams (2.1 counts its marker too).
    assert iperf.parse_client_sent((V20 / "sender-2.0.13a.txt").read_text()) == 268
    assert iperf.parse_client_sent((V20 / "sender-2.1.8.txt").read_text()) == 271


@pytest.mark.parametrize("name", ["receiver-2.0.13a-from-sender-2.1.8.csv",
                                  "receiver-2.1.8-from-sender-2.0.13a.csv"])
def test_a_mixed_pair_is_refused_not_reported_as_loss(name: str) -> None:
    report = iperf.parse_server_csv((V20 / name).read_text())
    assert report.inconsistent is not None
    assert "2147483" in report.inconsistent and "same iperf at both ends" in \
        report.inconsistent


def test_a_2_1_pair_is_consistent() -> None:
    report = iperf.parse_server_csv((V20 / "receiver-2.1.8-from-sender-2.1.8.csv").read_text())
    assert report.inconsistent is None and report.received == 271


def test_a_2_0_receiver_stopped_mid_stream() -> None:
    report = iperf.parse_server_csv((V20 / "receiver-2.0.13a-sigterm-midstream.txt")
                                    .read_text())
    assert report.received == 180 and report.inconsistent is None


def test_iperf_version_from_either_stream() -> None:
    assert iperf.parse_version("iperf version 2.1.8 (12 August 2022) pthreads") == (2, 1)
    assert iperf.parse_version("iperf version 2.0.13a (...) pthreads\n") == (2, 0)
    assert iperf.parse_version("iperf 3.12 (cJSON 1.7.15)") is None
