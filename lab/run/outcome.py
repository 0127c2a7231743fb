"""What a run found, typed: a receiver's outcome, a case's, the run's summary, and the one
place that writes and reads `summary.json`.

The file carries `"schema": SCHEMA`; summaries written before the field existed (schema 0)
are read too. Per-second rows of every receiver are kept (`intervals`), as iperf printed
them, for plots and for seeing when loss happened.
"""

from __future__ import annotations

import json
import os
from dataclasses import MISSING, asdict, dataclass, fields
from pathlib import Path
from typing import Any

from lab.errors import UsageError

SCHEMA = 1
SUMMARY = "summary.json"
VERDICTS = ("pass", "fail", "error", "none")
SLOW_SENDER_SHARE = 0.9


@dataclass(frozen=True)
class Interval:
    """One per-second report line of a receiver (all its streams together)."""

    start_s: float
    end_s: float
    received: int
    lost: int  # gaps in sequence numbers in that second, as iperf counts them
    jitter_ms: float
    rate_bps: float


@dataclass(frozen=True)
class ReceiverOutcome:
    name: str  # the member (fanout-3), or the receiver's name
    receiver: str  # the receiver spec it belongs to
    placement: str  # "host" or "pod"
    host: str
    iface: str
    attachment: bool
    received: int
    lost: int | None  # against the sender's count; None when that is unknown
    loss_pct: float | None
    iperf_lost: int  # gaps in sequence numbers, as iperf counts them
    jitter_ms: float | None
    rate_bps: int
    complete: bool  # its final report came before it was asked to stop
    expect: str
    verdict: str  # pass, fail, or error (the case went wrong: nothing judged)
    intervals: tuple[Interval, ...] = ()

    def judged(self, verdict: str) -> ReceiverOutcome:
        return ReceiverOutcome(**{**_shallow(self), "verdict": verdict})


@dataclass(frozen=True)
class IgmpSeen:
    """An IGMP membership message a capture saw (one per group record)."""

    time_s: float  # since the capture's first packet
    source: str
    group: str
    version: int
    kind: str  # join, leave, member, include, allow, block


@dataclass(frozen=True)
class CaptureOutcome:
    """What tcpdump saw at one capture point of a case (`capture:` in the scenario)."""

    point: str  # a host of the lab or a receiver of the case
    host: str  # where tcpdump ran
    iface: str
    file: str  # the pcap, relative to the run folder ("" when none was kept)
    packets: int
    igmp: tuple[IgmpSeen, ...]  # every group's membership messages
    datagrams: int  # the case's group and port: iperf data datagrams
    end_datagrams: int  # and iperf's end-of-stream datagrams
    error: str | None = None


# A port expected to carry none of the group may still carry the switch's own queries,
# ARP and IPv6 neighbour discovery of new pods: small packets, so it is judged by bytes, at
# most this share of the stream's payload.
PORT_NONE_SHARE = 0.01


@dataclass(frozen=True)
class PortOutcome:
    """What one host's port on the lab switch carried during the send (`expect_port`)."""

    host: str
    expect: str  # "none" or "all"
    packets: int  # sent out of the port toward the host while the sender sent
    bytes: int
    verdict: str  # pass, fail, or error (the case went wrong: nothing judged)


def judge_port(expect: str, packets: int, nbytes: int, sent: int | None,
               payload_bytes: int) -> str:
    """`all`: at least a packet per datagram sent, i.e. the stream reached the port (the
    counter holds queries and ARP too, so it does not prove each datagram did: the
    receivers' own counts do); `none`: under PORT_NONE_SHARE of the stream's payload in
    bytes (each datagram alone carries `payload_bytes`)."""
    if not sent:
        return "fail"
    if expect == "all":
        return "pass" if packets >= sent else "fail"
    return "pass" if nbytes <= PORT_NONE_SHARE * sent * payload_bytes else "fail"


@dataclass(frozen=True)
class CaseOutcome:
    name: str
    scenario: str
    file: str
    verdict: str  # pass, fail, error
    error: str | None
    group: str
    rate_bps: int
    duration_s: int
    sent: int | None  # data datagrams the sender reported; None when it reported nothing
    elapsed_s: float
    receivers: tuple[ReceiverOutcome, ...]
    captures: tuple[CaptureOutcome, ...] = ()
    # What the sender reached (datagrams sent x payload / duration): below the rate asked
    # when the path pushes back, as the macvlan port does with bclim -1.
    sent_rate_bps: int | None = None
    ports: tuple[PortOutcome, ...] = ()  # only in cases whose scenario has expect_port

    @property
    def sender_held_back(self) -> bool:
        """The sender reached under 90 % of its rate: a verdict at a lower rate than asked."""
        return self.sent_rate_bps is not None and \
            self.sent_rate_bps < SLOW_SENDER_SHARE * self.rate_bps


@dataclass(frozen=True)
class RunSummary:
    run: str
    lab: str
    backend: str
    lab_file: str
    started: str
    finished: str | None
    status: str  # running, complete, interrupted
    verdict: str
    scenarios: tuple[CaseOutcome, ...]
    recovered: str | None = None  # when a killed run's folder was kept
    note: str | None = None
    schema: int = SCHEMA


def _shallow(obj: Any) -> dict[str, Any]:
    return {f.name: getattr(obj, f.name) for f in fields(obj)}


def overall_verdict(cases: list[CaseOutcome] | tuple[CaseOutcome, ...]) -> str:
    verdicts = {c.verdict for c in cases}
    if "error" in verdicts:
        return "error"
    if "fail" in verdicts:
        return "fail"
    return "pass" if cases else "none"


# -- summary.json --------------------------------------------------------------------------


def to_json(summary: RunSummary) -> dict[str, Any]:
    data = asdict(summary)
    # The schema first, the optional notes only when there are any.
    for key in ("recovered", "note"):
        if data[key] is None:
            del data[key]
    for case in data["scenarios"]:
        if not case["captures"]:
            del case["captures"]  # only cases that asked for a capture carry the key
        if case["sent_rate_bps"] is None:
            del case["sent_rate_bps"]  # a summary of an older run reads back as it was
        if not case["ports"]:
            del case["ports"]
    return {"schema": data.pop("schema"), **data}


def _receiver(d: dict[str, Any]) -> ReceiverOutcome:
    return ReceiverOutcome(**{**_known(ReceiverOutcome, d), "intervals": tuple(
        Interval(**i) for i in d.get("intervals") or ())})


def _capture(d: dict[str, Any]) -> CaptureOutcome:
    return CaptureOutcome(**{**_known(CaptureOutcome, d), "igmp": tuple(
        IgmpSeen(**i) for i in d.get("igmp") or ())})


def _case(d: dict[str, Any]) -> CaseOutcome:
    return CaseOutcome(**{**_known(CaseOutcome, d), "receivers": tuple(
        _receiver(r) for r in d.get("receivers") or ()), "captures": tuple(
        _capture(c) for c in d.get("captures") or ()), "ports": tuple(
        PortOutcome(**_known(PortOutcome, p)) for p in d.get("ports") or ())})


def _known(cls: type, d: dict[str, Any]) -> dict[str, Any]:
    names = {f.name for f in fields(cls)}
    missing = [f.name for f in fields(cls) if f.name not in d and f.default is MISSING
               and f.default_factory is MISSING]
    if missing:
        raise ValueError(f"{cls.__name__} lacks {', '.join(missing)}")
    return {k: v for k, v in d.items() if k in names}


def from_json(data: dict[str, Any]) -> RunSummary:
    schema = data.get("schema", 0)
    if not isinstance(schema, int) or schema > SCHEMA:
        raise ValueError(f"schema {schema!r} is newer than this lab reads ({SCHEMA})")
    return RunSummary(**{**_known(RunSummary, {**data, "schema": SCHEMA}),
                         "scenarios": tuple(_case(c) for c in data.get("scenarios") or ())})


def write_summary(folder: Path, summary: RunSummary) -> None:
    """summary.json written whole or not at all (a crash never leaves half a file)."""
    tmp = folder / f".{SUMMARY}.tmp"
    tmp.write_text(json.dumps(to_json(summary), indent=2) + "\n")
    os.replace(tmp, folder / SUMMARY)


def read_summary(folder: Path) -> RunSummary:
    path = folder / SUMMARY
    if not path.is_file():
        raise UsageError(f"{folder} has no {SUMMARY}")
    try:
        return from_json(json.loads(path.read_text()))
    except (ValueError, TypeError) as exc:
        raise UsageError(f"{path} is not a summary this lab can read: {exc}") from None
