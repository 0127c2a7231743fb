"""iperf2 command lines and pure parsers of its output (and of /proc/net/igmp).

iperf2 has no JSON output (iperf3 has, but cannot do multicast). Receivers report in CSV
(`-y C`), whose lines have 14 fields: time, src, sport, dst, dport, id, interval, bytes,
bits/s, jitter ms, lost, total, loss %, out-of-order. The sender's CSV is unreliable
(total -1), so the sender's datagram count comes from its text report.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from lab.run.outcome import Interval

# A receiver listens a little longer than the sender sends: it must be up before the
# sender starts and must still be there to print its final report.
RECEIVER_SLACK_S = 15


def server_argv(group: ipaddress.IPv4Address, iface: str, port: int, listen_s: int,
                buffer: str | None = None) -> list[str]:
    # `GROUP%IFACE` joins on that interface; without it the kernel picks the interface of
    # the default route (eth0 in a pod) and the pod receives nothing (DESIGN.md section 5).
    argv = ["iperf", "-s", "-u", "-B", f"{group}%{iface}", "-p", str(port),
            "-y", "C", "-i", "1", "-t", str(listen_s)]
    if buffer:
        argv += ["-w", buffer]
    return argv


# iperf2's UDP datagram payload when -l is not given: what a rate is made of.
UDP_PAYLOAD_BYTES = 1470


def sent_rate_bps(sent: int | None, duration_s: int) -> int | None:
    """The rate the sender reached: its data datagrams over the stream's duration."""
    return None if sent is None or duration_s <= 0 else \
        round(sent * UDP_PAYLOAD_BYTES * 8 / duration_s)


def client_argv(group: ipaddress.IPv4Address, port: int, ttl: int, duration: int, rate_bps: int,
                bind: ipaddress.IPv4Address) -> list[str]:
    # -B SRC both picks the source address and the outgoing interface for the group.
    return ["iperf", "-c", str(group), "-u", "-p", str(port), "--ttl", str(ttl),
            "-t", str(duration), "-b", str(rate_bps), "-B", str(bind)]


@dataclass(frozen=True)
class StreamReport:
    """One sender stream as one receiver saw it."""

    source: str
    received: int
    lost: int
    total: int
    jitter_ms: float
    rate_bps: float
    seconds: float
    complete: bool  # False when no final report came (receiver or sender stopped early)


@dataclass(frozen=True)
class ReceiverReport:
    streams: tuple[StreamReport, ...]
    intervals: tuple[Interval, ...] = ()  # per-second lines, every stream summed
    # Why the report cannot be believed, when it cannot: a final report whose total is
    # not what its seconds add up to is what an iperf 2.0.x / 2.1.x pair prints (lost
    # 2147483107 of 2147483377: 100 % "loss" with every datagram there).
    inconsistent: str | None = None

    @property
    def received(self) -> int:
        return sum(s.received for s in self.streams)

    @property
    def lost(self) -> int:
        return sum(s.lost for s in self.streams)

    @property
    def complete(self) -> bool:
        return all(s.complete for s in self.streams)

    @property
    def jitter_ms(self) -> float | None:
        return max((s.jitter_ms for s in self.streams), default=None)

    @property
    def rate_bps(self) -> float:
        return sum(s.rate_bps for s in self.streams)


@dataclass(frozen=True)
class _Line:
    key: tuple[str, str, str]
    start: float
    end: float
    bytes: int
    bps: float
    jitter: float
    lost: int
    total: int


def _parse_line(line: str) -> _Line | None:
    parts = line.strip().split(",")
    if len(parts) < 13:
        return None
    try:
        start, end = (float(x) for x in parts[6].split("-"))
        # iperf 2.1 puts the remote (sender) address first, 2.0 the local one (the group):
        # the sender is whichever of the two is not the multicast group.
        first = ipaddress.IPv4Address(parts[1])
        source, sport = (parts[3], parts[4]) if first.is_multicast else (parts[1], parts[2])
        return _Line((source, sport, parts[5]), start, end, int(parts[7]), float(parts[8]),
                     float(parts[9]), int(parts[10]), int(parts[11]))
    except ValueError:
        return None


def parse_server_csv(text: str) -> ReceiverReport:
    """Per sender stream: the final report if there is one, else the sum of its intervals.

    With `-i 1` iperf prints an interval line each second and, when the stream ends, a
    final line whose interval starts at 0.0 and spans the stream. A 1-second stream's
    interval and final line look alike, so the last 0.0-start line wins.
    """
    by_stream: dict[tuple[str, str, str], list[_Line]] = {}
    for raw in text.splitlines():
        line = _parse_line(raw)
        if line is not None:
            by_stream.setdefault(line.key, []).append(line)
    streams = []
    seconds: dict[tuple[float, float], list[_Line]] = {}
    inconsistent: str | None = None
    with_data = {key[:2] for key, lines in by_stream.items()
                 if any(ln.total or ln.bytes for ln in lines)}
    for key, lines in by_stream.items():
        if key[:2] in with_data and all(ln.total == 0 and ln.bytes == 0 for ln in lines):
            # iperf 2.0 opens an empty second stream from the same sender's end-of-stream
            # datagrams and reports it each second with nothing in it: not a stream.
            continue
        finals = [ln for i, ln in enumerate(lines) if _is_final(ln, lines[:i])]
        for ln in lines:
            if not any(ln is f for f in finals):
                seconds.setdefault((ln.start, ln.end), []).append(ln)
        if finals:
            f = finals[-1]
            seen = sum(ln.total for ln in lines if not any(ln is g for g in finals))
            if f.total >= FALSE_TOTAL or (seen and f.total > 2 * seen + 100):
                inconsistent = (f"the final report from {key[0]} counts {f.total} datagrams "
                                f"({f.lost} lost) where its seconds add up to {seen}: the "
                                "sender and this receiver run iperf versions that do not "
                                "agree (2.0.x and 2.1.x); run the same iperf at both ends")
            streams.append(StreamReport(key[0], max(f.total - f.lost, 0), max(f.lost, 0),
                                        f.total, f.jitter, f.bps, f.end - f.start, True))
        else:
            total = sum(ln.total for ln in lines)
            lost = sum(max(ln.lost, 0) for ln in lines)
            secs = max(ln.end for ln in lines) - min(ln.start for ln in lines)
            bits = sum(ln.bytes for ln in lines) * 8
            streams.append(StreamReport(key[0], max(total - lost, 0), lost, total,
                                        lines[-1].jitter, bits / secs if secs else 0.0,
                                        secs, False))
    intervals = tuple(
        Interval(start, end, sum(max(ln.total - ln.lost, 0) for ln in lines),
                 sum(max(ln.lost, 0) for ln in lines), max(ln.jitter for ln in lines),
                 sum(ln.bps for ln in lines))
        for (start, end), lines in sorted(seconds.items()))
    return ReceiverReport(tuple(streams), intervals, inconsistent)


def _is_final(line: _Line, before: list[_Line]) -> bool:
    # Interval lines span exactly 1.0 s on whole seconds; a final line starts at 0.0 and
    # spans the stream, so it differs from an interval unless the stream lasted 1.0 s,
    # where it repeats the first interval line.
    if line.start != 0.0:
        return False
    return abs(line.end - 1.0) > 1e-6 or any(b.start == 0.0 for b in before)


def has_final_report(text: str) -> bool:
    report = parse_server_csv(text)
    return bool(report.streams) and report.complete


_SENT_RE = re.compile(r"Sent (\d+) datagrams")
# iperf 2.0 prints intervals with one decimal ("0.0- 3.0 sec"), 2.1 with four.
_V20_INTERVAL = re.compile(r"\]\s+\d+\.\d-\s*\d+\.\d sec")
# A total this large is iperf 2.0/2.1 disagreeing on the end-of-stream marker, not traffic.
FALSE_TOTAL = 2**31 - 2**20


def parse_client_sent(text: str) -> int | None:
    """Data datagrams the sender sent, or None if it printed no final report.

    iperf 2.1 counts its end-of-stream marker datagram in "Sent N", while receivers count
    data datagrams only (a clean 5 s run: "Sent 450", receiver total 449), so the data
    count is N - 1; iperf 2.0 says N for N data datagrams.
    """
    matches = _SENT_RE.findall(text)
    if not matches:
        return None
    sent = int(matches[-1])
    return sent if _V20_INTERVAL.search(text) else max(sent - 1, 0)


_VERSION_RE = re.compile(r"iperf version (\d+)\.(\d+)")


def parse_version(text: str) -> tuple[int, int] | None:
    """(major, minor) from `iperf --version` (stderr up to 2.1.8, stdout after)."""
    match = _VERSION_RE.search(text)
    return (int(match.group(1)), int(match.group(2))) if match else None


def parse_igmp(text: str) -> dict[str, set[ipaddress.IPv4Address]]:
    """Groups joined per device, from /proc/net/igmp (group in little-endian hex)."""
    joined: dict[str, set[ipaddress.IPv4Address]] = {}
    device: str | None = None
    for line in text.splitlines()[1:]:
        if not line.strip():
            continue
        if not line[0].isspace():
            # "Idx<TAB>%-10s: ...": a name of 10 or more characters touches the colon
            # ("verylongif0:"), so the name is what stands before the first colon.
            parts = line.split(":", 1)[0].split()
            device = parts[1] if len(parts) > 1 else None
            if device is not None:
                joined.setdefault(device, set())
        elif device is not None:
            hexgroup = line.split()[0]
            try:
                value = int(hexgroup, 16)
            except ValueError:
                continue
            joined[device].add(ipaddress.IPv4Address(value.to_bytes(4, "little")))
    return joined
