"""The pcap reader on capture files built byte by byte here (every IGMP form, iperf's
datagrams, both link types tcpdump writes), and on the real captures in tests/data/pcap
that tcpdump wrote during a netns run (pod-multus: the pod's attachment and the node)."""

from __future__ import annotations

import ipaddress
import struct
from pathlib import Path

import pytest

from lab.capture import pcap

# Runs on every OS (the GitHub workflow's selection; see README "Every laptop").
pytestmark = pytest.mark.portable

DATA = Path(__file__).parent.parent / "data" / "pcap"
GROUP = "224.0.67.67"
POD = "192.168.56.13"


def _file(frames: list[bytes], linktype: int = 1, nano: bool = False,
          endian: str = "<") -> bytes:
    magic = 0xA1B23C4D if nano else 0xA1B2C3D4
    out = struct.pack(endian + "IHHiIII", magic, 2, 4, 0, 0, 65535, linktype)
    for n, frame in enumerate(frames):
        out += struct.pack(endian + "IIII", 1000 + n, 500, len(frame), len(frame)) + frame
    return out


def _ip(proto: int, src: str, dst: str, body: bytes) -> bytes:
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(body), 0, 0, 1, proto, 0,
                         ipaddress.IPv4Address(src).packed, ipaddress.IPv4Address(dst).packed)
    return header + body


def _eth(ip: bytes, vlan: bool = False) -> bytes:
    tag = b"\x81\x00\x00\x05" if vlan else b""
    return b"\x01\x00\x5e\x00\x43\x43" + b"\x02" * 6 + tag + b"\x08\x00" + ip


def _sll(ip: bytes) -> bytes:
    return b"\x00\x04\x00\x01\x00\x06" + b"\x02" * 6 + b"\x00\x00" + b"\x08\x00" + ip


def _v3(*records: tuple[int, str, int]) -> bytes:
    body = b""
    for rtype, group, nsrc in records:
        body += struct.pack("!BBH4s", rtype, 0, nsrc, ipaddress.IPv4Address(group).packed)
        body += b"\x0a\x00\x00\x01" * nsrc
    return struct.pack("!BBHHH", 0x22, 0, 0, 0, len(records)) + body


def _v2(kind: int, group: str) -> bytes:
    return struct.pack("!BBH4s", kind, 0, 0, ipaddress.IPv4Address(group).packed)


def _udp(seq: int, port: int = 5001, group: str = GROUP, src: str = "192.168.56.12") -> bytes:
    payload = struct.pack("!i", seq) + b"\x00" * 20
    return _ip(17, src, group, struct.pack("!HHHH", 40000, port, 8 + len(payload), 0)
               + payload)


def test_memberships_of_every_igmp_version_with_time_and_kind() -> None:
    frames = [_eth(_ip(2, POD, "224.0.0.22", _v3((4, GROUP, 0), (2, "239.1.1.1", 0)))),
              _eth(_ip(2, POD, "224.0.0.22", _v3((3, GROUP, 0), (3, "232.1.1.1", 1),
                                                  (6, "239.2.2.2", 2)))),
              _eth(_ip(2, "10.244.0.5", GROUP, _v2(0x16, GROUP))),
              _eth(_ip(2, "10.244.0.5", "224.0.0.2", _v2(0x17, GROUP))),
              _eth(_ip(2, "10.0.0.9", GROUP, _v2(0x12, GROUP))),
              _eth(_ip(2, "192.168.56.1", "224.0.0.1", _v2(0x11, "0.0.0.0")))]
    seen = pcap.parse(_file(frames))
    assert seen.packets == 6 and seen.queries == 1
    assert [(m.time_s, m.source, m.group, m.version, m.kind) for m in seen.memberships] == [
        (0.0, POD, GROUP, 3, "join"), (0.0, POD, "239.1.1.1", 3, "member"),
        (1.0, POD, GROUP, 3, "leave"), (1.0, POD, "232.1.1.1", 3, "include"),
        (1.0, POD, "239.2.2.2", 3, "block"),
        (2.0, "10.244.0.5", GROUP, 2, "join"), (3.0, "10.244.0.5", GROUP, 2, "leave"),
        (4.0, "10.0.0.9", GROUP, 1, "join")]


def test_datagrams_counted_as_iperf_counts_them() -> None:
    # iperf numbers data 1..N-1, sends -N several times; a lost datagram (3) is missing,
    # and another group, another port and a non-multicast packet are not counted.
    frames = [_eth(_udp(s)) for s in (1, 2, 4, 5, -6, -6, -6)]
    frames += [_eth(_udp(1, group="239.9.9.9")), _eth(_udp(7, port=5002)),
               _eth(_udp(8, group="192.168.56.11"))]
    seen = pcap.parse(_file(frames), GROUP, 5001)
    assert (seen.datagrams, seen.end_datagrams) == (5, 3)
    assert seen.multicast == {GROUP: 8, "239.9.9.9": 1}
    # Without a group asked for, no datagram of a stream is counted; the groups still are.
    assert pcap.parse(_file(frames)).datagrams == 0


@pytest.mark.parametrize("linktype,wrap", [(1, _eth), (1, lambda ip: _eth(ip, vlan=True)),
                                           (113, _sll)])
def test_link_types_and_byte_orders(linktype: int, wrap: object) -> None:
    frames = [wrap(_ip(2, POD, "224.0.0.22", _v3((4, GROUP, 0)))), wrap(_udp(1))]  # type: ignore[operator]
    for endian in "<>":
        for nano in (False, True):
            seen = pcap.parse(_file(frames, linktype, nano, endian), GROUP, 5001)
            assert [m.kind for m in seen.memberships] == ["join"]
            assert seen.datagrams == 1


def test_a_record_cut_short_is_not_counted_and_bad_files_are_named() -> None:
    whole = _file([_eth(_udp(1)), _eth(_udp(2))])
    assert pcap.parse(whole[:-5], GROUP).datagrams == 1
    with pytest.raises(pcap.PcapError, match="not a pcap file"):
        pcap.parse(b"hello world, this is not a capture file")
    with pytest.raises(pcap.PcapError, match="shorter than a pcap header"):
        pcap.parse(b"\xd4\xc3\xb2\xa1")
    with pytest.raises(pcap.PcapError, match="pcapng"):
        pcap.parse(b"\x0a\x0d\x0d\x0a" + b"\x00" * 40)
    with pytest.raises(pcap.PcapError, match="link type 105"):
        pcap.parse(_file([b"\x00" * 40], linktype=105))


def test_real_captures_of_a_netns_run() -> None:
    """tcpdump's own files (pod-multus on netns, 1.05 Mbit/s for 5 s, 450 datagrams)."""
    pod = pcap.read(DATA / "pod-multus-pod-attached.pcap", GROUP, 5001)
    node = pcap.read(DATA / "pod-multus-k8s.pcap", GROUP, 5001)
    for seen in (pod, node):
        assert seen.datagrams == 450
        joins = [m for m in seen.memberships if m.kind == "join" and m.group == GROUP]
        assert joins and joins[0].version == 3 and joins[0].time_s == 0.0
    assert {m.source for m in pod.memberships} == {m.source for m in node.memberships}
