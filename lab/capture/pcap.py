"""Reading a classic pcap file (what `tcpdump -w` writes) for what a multicast lab cares
about: IGMP membership reports (who joined or left which group, in which IGMP version,
when) and the UDP datagrams of one group and port.

Plain parsing with `struct`: the lab needs no packet library for two protocols, and the
numbers must not depend on tcpdump's text output, which changes between versions.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass, field
from pathlib import Path

# Link types tcpdump writes: Ethernet, Linux cooked v1 (`-i any`) and v2.
LINKTYPE_ETHERNET = 1
LINKTYPE_LINUX_SLL = 113
LINKTYPE_LINUX_SLL2 = 276
ETHERTYPE_IPV4 = 0x0800
ETHERTYPE_VLAN = (0x8100, 0x88A8)
PROTO_IGMP = 2
PROTO_UDP = 17

# IGMP message types (RFC 1112, 2236, 3376).
IGMP_QUERY = 0x11
IGMP_V1_REPORT = 0x12
IGMP_V2_REPORT = 0x16
IGMP_V2_LEAVE = 0x17
IGMP_V3_REPORT = 0x22
# IGMPv3 group record types: what a record says about the sender's membership.
V3_RECORD_KIND = {1: "include", 2: "member", 3: "leave", 4: "join", 5: "allow", 6: "block"}


class PcapError(ValueError):
    """The file is not a capture this reader understands (named by the caller)."""


@dataclass(frozen=True)
class Membership:
    """One group in one IGMP membership message."""

    time_s: float  # since the first packet of the capture
    source: str  # the member's address
    group: str
    version: int  # 1, 2 or 3
    kind: str  # join, leave, member (answer to a query), include/allow/block (v3 sources)


@dataclass
class CaptureSummary:
    packets: int = 0
    memberships: list[Membership] = field(default_factory=list)
    queries: int = 0
    # UDP datagrams of the group and port asked for, counted as iperf counts what it
    # received: each sequence number once, the stream's last number carried by the first
    # end-of-stream datagram (iperf numbers data 1..N-1 and sends -N, several times).
    datagrams: int = 0
    # The end-of-stream datagrams seen, repeats included.
    end_datagrams: int = 0
    # Every multicast UDP packet, per destination group (what `lab capture` shows).
    multicast: dict[str, int] = field(default_factory=dict)


def _header(data: bytes) -> tuple[str, float, int]:
    if len(data) < 24:
        raise PcapError("shorter than a pcap header (24 bytes)")
    magic = data[:4]
    for endian in ("<", ">"):
        (value,) = struct.unpack(endian + "I", magic)
        if value in (0xA1B2C3D4, 0xA1B23C4D):
            scale = 1e-6 if value == 0xA1B2C3D4 else 1e-9
            linktype = struct.unpack(endian + "I", data[20:24])[0] & 0x0FFFFFFF
            return endian, scale, linktype
    if magic == b"\x0a\x0d\x0d\x0a":
        raise PcapError("pcapng; write classic pcap (tcpdump -w does by default)")
    raise PcapError(f"not a pcap file (magic {magic.hex()})")


def _ipv4_payload(linktype: int, frame: bytes) -> bytes | None:
    if linktype == LINKTYPE_ETHERNET:
        offset, ethertype = 14, int.from_bytes(frame[12:14], "big") if len(frame) >= 14 else 0
        while ethertype in ETHERTYPE_VLAN and len(frame) >= offset + 4:
            ethertype = int.from_bytes(frame[offset + 2:offset + 4], "big")
            offset += 4
    elif linktype == LINKTYPE_LINUX_SLL:
        offset, ethertype = 16, int.from_bytes(frame[14:16], "big") if len(frame) >= 16 else 0
    elif linktype == LINKTYPE_LINUX_SLL2:
        offset, ethertype = 20, int.from_bytes(frame[0:2], "big") if len(frame) >= 20 else 0
    else:
        raise PcapError(f"link type {linktype} (this reader knows Ethernet and Linux cooked)")
    return frame[offset:] if ethertype == ETHERTYPE_IPV4 else None


def read(path: Path, group: str | None = None, port: int | None = None) -> CaptureSummary:
    return parse(path.read_bytes(), group, port)


def parse(data: bytes, group: str | None = None, port: int | None = None) -> CaptureSummary:
    """Memberships of every group; datagrams counted for `group` (and `port`) only."""
    endian, scale, linktype = _header(data)
    want = ipaddress.IPv4Address(group).packed if group else None
    summary = CaptureSummary()
    offset, first = 24, None
    numbers: set[int] = set()
    record = struct.Struct(endian + "IIII")
    while offset + 16 <= len(data):
        sec, frac, caplen, _ = record.unpack_from(data, offset)
        if offset + 16 + caplen > len(data):
            break
        frame = data[offset + 16:offset + 16 + caplen]
        offset += 16 + caplen
        summary.packets += 1
        stamp = sec + frac * scale
        first = stamp if first is None else first
        ip = _ipv4_payload(linktype, frame)
        if ip is None or len(ip) < 20 or ip[0] >> 4 != 4:
            continue
        header = (ip[0] & 0x0F) * 4
        proto, src, dst, body = ip[9], ip[12:16], ip[16:20], ip[header:]
        if proto == PROTO_IGMP:
            if body[:1] == bytes([IGMP_QUERY]):
                summary.queries += 1
            summary.memberships.extend(_igmp(body, str(ipaddress.IPv4Address(src)),
                                             round(stamp - first, 6)))
        if proto == PROTO_UDP and 224 <= dst[0] <= 239:
            to = str(ipaddress.IPv4Address(dst))
            summary.multicast[to] = summary.multicast.get(to, 0) + 1
        if proto == PROTO_UDP and want is not None and dst == want and len(body) >= 8:
            if port is not None and int.from_bytes(body[2:4], "big") != port:
                continue
            # iperf2's datagram starts with its sequence number, a signed 32-bit integer:
            # negative on the datagrams that end the stream.
            if len(body) < 12:
                continue
            seq = int.from_bytes(body[8:12], "big", signed=True)
            if seq < 0:
                summary.end_datagrams += 1
            numbers.add(abs(seq))
    summary.datagrams = len(numbers)
    # A record cut short at the end (the writer was killed mid-write) is not counted.
    return summary


def _igmp(body: bytes, source: str, time_s: float) -> list[Membership]:
    if len(body) < 8:
        return []
    kind = body[0]
    group = str(ipaddress.IPv4Address(body[4:8]))
    if kind == IGMP_V1_REPORT:
        return [Membership(time_s, source, group, 1, "join")]
    if kind == IGMP_V2_REPORT:
        return [Membership(time_s, source, group, 2, "join")]
    if kind == IGMP_V2_LEAVE:
        return [Membership(time_s, source, group, 2, "leave")]
    if kind != IGMP_V3_REPORT:
        return []
    found: list[Membership] = []
    count, at = int.from_bytes(body[6:8], "big"), 8
    for _ in range(count):
        if at + 8 > len(body):
            break
        rtype, aux, nsrc = body[at], body[at + 1], int.from_bytes(body[at + 2:at + 4], "big")
        rgroup = str(ipaddress.IPv4Address(body[at + 4:at + 8]))
        what = V3_RECORD_KIND.get(rtype, f"record-{rtype}")
        if rtype == 3 and nsrc:
            what = "include"  # to-include with sources: a source-specific join, not a leave
        found.append(Membership(time_s, source, rgroup, 3, what))
        at += 8 + 4 * nsrc + 4 * aux
    return found
