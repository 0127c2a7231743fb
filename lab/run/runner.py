"""Running scenario cases: receivers joined, sender, reports parsed, verdicts.

The runner knows hosts and pods only through the `Host` interface, so the same code runs
on namespaces, on VMs over SSH and on Kubernetes pods.
"""

from __future__ import annotations

import ipaddress
import time
from dataclasses import dataclass

from lab import checkpoint
from lab.backends.base import Backend, Pod
from lab.capture import capture as tcpdump
from lab.capture import pcap
from lab.command import Result
from lab.errors import BackendError, Interrupted, LabError
from lab.host import Host, PodSpec, Process
from lab.model.scenario import Case, Expectation, ReceiverSpec, Scenario, format_rate
from lab.run import iperf
from lab.run.artifacts import RunArtifacts
from lab.run.outcome import (
    CaptureOutcome,
    CaseOutcome,
    IgmpSeen,
    PortOutcome,
    ReceiverOutcome,
    judge_port,
)
from lab.ui import Reporter, Step

JOIN_TIMEOUT_S = 15.0
JOIN_POLL_S = 0.05
# After the sender ends, how long receivers that got data may take to print their final
# report. Receivers that got nothing print nothing, so they are not waited for.
FINAL_REPORT_GRACE_S = 3.0
SENDER_SLACK_S = 20


@dataclass
class Endpoint:
    """One receiver: a host NIC or a pod, with the iperf process listening there."""

    name: str
    spec: ReceiverSpec
    host: Host
    iface: str
    process: Process | None = None
    output: str = ""
    collected: bool = False
    # iperf 2.1.8 also prints a whole-stream summary when it gets SIGTERM, in the same
    # form as the final report that the end of the stream brings: only a report that was
    # there before the receiver was asked to stop proves the stream ended whole.
    reported_before_stop: bool = False


def listen_seconds(s: Scenario) -> int:
    """How long a receiver listens: the stream, the wait for every join, and slack."""
    return s.duration + iperf.RECEIVER_SLACK_S + int(JOIN_TIMEOUT_S)


def receiver_argv(s: Scenario, iface: str) -> list[str]:
    return iperf.server_argv(s.group, iface, s.port, listen_seconds(s), s.receive_buffer)


def receiver_pod_specs(case: Case) -> list[PodSpec]:
    """The pods a case needs: what the runner asks the backend for, and what `lab
    manifests` prints (one function, so the two cannot differ)."""
    s = case.scenario
    specs: list[PodSpec] = []
    for r in s.receivers:
        if r.placement != "pod":
            continue
        assert r.iface is not None  # a pod receiver's iface defaults to eth0 or the attachment
        specs.extend(PodSpec(member, r.attachment, case.name,
                             tuple(receiver_argv(s, r.iface)), listen_seconds(s),
                             r.node_of(member))
                     for member in r.members())
    return specs


def run_case(case: Case, backend: Backend, artifacts: RunArtifacts,
             reporter: Reporter) -> CaseOutcome:
    """Run one case; returns its outcome (also written to the artifacts)."""
    s = case.scenario
    artifacts.write_resolved(case.name, case.as_dict())
    started = time.time()
    endpoints: list[Endpoint] = []
    pods: list[Pod] = []
    captures: list[tcpdump.Capture] = []
    captured: list[CaptureOutcome] = []
    sent: int | None = None
    port_counts: dict[str, tuple[int, int]] = {}
    error: str | None = None
    interrupted: BaseException | None = None
    try:
        pod_specs = receiver_pod_specs(case)
        if pod_specs:
            with reporter.step(f"{case.name}: create {len(pod_specs)} receiver pod(s)"):
                pods = backend.create_pods(pod_specs)
        by_name = {p.name: p for p in pods}
        for r in s.receivers:
            for member in r.members():
                host = by_name[member].host if r.placement == "pod" else backend.host(r.host)
                iface = r.iface or backend.lab_nic(r.host)
                endpoints.append(Endpoint(member, r, host, iface))
        sender = backend.host(s.sender_host)
        _same_iperf(sender, endpoints)
        if s.capture:
            with reporter.step(f"{case.name}: capture on {', '.join(s.capture)}"):
                _start_captures(s, backend, endpoints, captures)
        with reporter.step(f"{case.name}: {len(endpoints)} receiver(s) join {s.group}"):
            for ep in endpoints:
                ep.process = ep.host.start(receiver_argv(s, ep.iface),
                                           timeout=listen_seconds(s) + 5)
            _wait_joined(endpoints, str(s.group))
            # A snooping switch forwards the group to a port only once it has the join:
            # the send starts when it has every receiver's (not merely when they joined).
            backend.wait_for_switch(str(s.group), _on_lab_network(endpoints, backend),
                                    JOIN_TIMEOUT_S)
        checkpoint.reached("run-joined")
        ports_before = backend.port_tx() if s.expect_port else {}
        with reporter.step(f"{case.name}: send {s.duration} s at {_rate(case.rate)} from "
                           f"{s.sender_host}"):
            argv = iperf.client_argv(s.group, s.port, s.ttl, s.duration, case.rate,
                                     s.sender_bind)
            if _has_timeline(s):
                result = _send_on_timeline(s, argv, sender, backend, endpoints, pods,
                                           ports_before, artifacts, case.name)
            else:
                result = sender.run(argv, timeout=s.duration + SENDER_SLACK_S, check=False)
            artifacts.write_sender(case.name, result)
            sent = iperf.parse_client_sent(result.stdout)
            if sent is None:
                error = (f"the sender on {s.sender_host} printed no report (exit status "
                         f"{result.exit_status}): {_tail(result.stderr or result.stdout)}")
            if s.expect_port:
                after = backend.port_tx()
                port_counts = {p.host: (after[p.host][0] - ports_before[p.host][0],
                                        after[p.host][1] - ports_before[p.host][1])
                               for p in s.expect_port}
        with reporter.step(f"{case.name}: collect {len(endpoints)} receiver report(s)") as step:
            _wait_final_reports(endpoints, step)
            _collect(endpoints, artifacts, case.name, step)
    except (Interrupted, KeyboardInterrupt) as exc:
        # Recorded as this case's error, then passed on: the whole run stops.
        interrupted = exc
        error = str(exc) or "interrupted (SIGINT)"
    except LabError as exc:
        error = str(exc)
    finally:
        _collect(endpoints, artifacts, case.name, None)  # what a failure left running
        # Before the pods go: a pod's capture file is fetched through the pod.
        captured, capture_error = _finish_captures(captures, artifacts, case)
        if capture_error:
            error = (error + "\n" if error else "") + capture_error
        if pods:
            try:
                backend.delete_pods(pods)
            except BackendError as exc:
                error = (error + "\n" if error else "") + str(exc)
    outcome = _outcome(case, endpoints, sent, error, started, tuple(captured), port_counts)
    artifacts.add_case(outcome)
    if interrupted is not None:
        raise interrupted
    return outcome


def _on_lab_network(endpoints: list[Endpoint], backend: Backend) -> set[str]:
    """The hosts whose lab-switch port a receiver's join must reach: attached pods' nodes
    and host receivers on the lab NIC (a pod without the attachment joins on eth0, and a
    host receiver on another interface, elsewhere)."""
    return {ep.spec.node_of(ep.name) for ep in endpoints
            if (ep.spec.placement == "pod" and ep.spec.attachment)
            or (ep.spec.placement == "host" and ep.iface == backend.lab_nic(ep.spec.host))}


def _has_timeline(s: Scenario) -> bool:
    return any(r.leave_after_s is not None for r in s.receivers) or \
        any(p.from_s is not None for p in s.expect_port)


def _send_on_timeline(s: Scenario, argv: list[str], sender: Host, backend: Backend,
                      endpoints: list[Endpoint], pods: list[Pod],
                      ports_before: dict[str, tuple[int, int]], artifacts: RunArtifacts,
                      case_name: str) -> Result:
    """The sender in the background, and at their seconds into the send: receivers that
    leave (a host's iperf ended, so its socket leaves the group; pods collected, then
    deleted) and port counters that start counting late (`from_s`). Then the sender is
    waited for, as long as `sender.run` would have."""
    events: list[tuple[float, str, str]] = sorted(
        [(r.leave_after_s, "leave", r.name) for r in s.receivers
         if r.leave_after_s is not None]
        + [(p.from_s, "port", p.host) for p in s.expect_port if p.from_s is not None])
    process = sender.start(argv, timeout=s.duration + SENDER_SLACK_S)
    try:
        return _timeline(s, events, process, backend, endpoints, pods, ports_before,
                         artifacts, case_name)
    except BaseException:
        process.stop()  # a failed step or Ctrl-C: no stray stream into the next case
        raise


def _timeline(s: Scenario, events: list[tuple[float, str, str]], process: Process,
              backend: Backend, endpoints: list[Endpoint], pods: list[Pod],
              ports_before: dict[str, tuple[int, int]], artifacts: RunArtifacts,
              case_name: str) -> Result:
    began = time.monotonic()
    for at, what, name in events:
        # The scenario's own schedule (seconds into the send), not a wait for a state.
        while process.running() and time.monotonic() < began + at:
            time.sleep(min(0.02, max(0.0, began + at - time.monotonic())))
        if what == "port":
            ports_before[name] = backend.port_tx()[name]
            continue
        leaving = [ep for ep in endpoints if ep.spec.name == name]
        _collect(leaving, artifacts, case_name, None)
        # Their sockets closed, so their hosts report the leave; a pod is deleted once a
        # snooping switch has heard it (as a kubelet stops a pod's processes before it
        # tears down its network), from each port that no other receiver still holds.
        staying = _on_lab_network([ep for ep in endpoints if not ep.collected], backend)
        backend.wait_for_leave(str(s.group), _on_lab_network(leaving, backend) - staying,
                               JOIN_TIMEOUT_S)
        gone = [p for p in pods if p.name in {ep.name for ep in leaving}]
        if gone:
            backend.delete_pods(gone)
            pods[:] = [p for p in pods if p not in gone]
    deadline = began + s.duration + SENDER_SLACK_S
    while process.running() and time.monotonic() < deadline:
        time.sleep(0.05)
    return process.stop()


def _start_captures(s: Scenario, backend: Backend, endpoints: list[Endpoint],
                    captures: list[tcpdump.Capture]) -> None:
    """tcpdump at each capture point, listening before any receiver joins: a receiver on
    the interface it receives on, a host on its lab NIC. Started ones are added to
    `captures` as they start, so a failure leaves nothing unowned."""
    by_member = {ep.name: ep for ep in endpoints}
    seconds = listen_seconds(s) + SENDER_SLACK_S
    for point in s.capture:
        ep = by_member.get(point)
        host, iface = (ep.host, ep.iface) if ep else (backend.host(point),
                                                      backend.lab_nic(point))
        captures.append(tcpdump.start(backend.lab.name, point, host, iface, seconds=seconds))


def _finish_captures(captures: list[tcpdump.Capture], artifacts: RunArtifacts, case: Case
                     ) -> tuple[list[CaptureOutcome], str | None]:
    """Stop every capture, keep its file in raw/<case>/ and read it. Every capture is
    stopped and fetched even when one of them fails."""
    outcomes: list[CaptureOutcome] = []
    errors: list[str] = []
    for c in captures:
        c.process.terminate()
    for c in captures:
        local, relative = artifacts.capture_file(case.name, c.point)
        status, said = c.stop()
        problem: str | None = None
        summary = pcap.CaptureSummary()
        try:
            tcpdump.fetch(c, local)
            summary = pcap.read(local, str(case.scenario.group), case.scenario.port)
        except (BackendError, pcap.PcapError) as exc:
            problem = f"capture on {c.point}: {exc}"
            relative = relative if local.exists() else ""
        if problem is None and status not in (0, 124, -15, 143):
            problem = f"capture on {c.point}: tcpdump exit status {status}: {said[-300:]}"
        if problem:
            errors.append(problem)
        outcomes.append(CaptureOutcome(
            point=c.point, host=c.host.name, iface=c.iface, file=relative,
            packets=summary.packets,
            igmp=tuple(IgmpSeen(m.time_s, m.source, m.group, m.version, m.kind)
                       for m in summary.memberships),
            datagrams=summary.datagrams, end_datagrams=summary.end_datagrams, error=problem))
    return outcomes, "\n".join(errors) or None


def _same_iperf(sender: Host, endpoints: list[Endpoint]) -> None:
    """Refuse a case whose ends run iperf versions that do not agree: a 2.0.x receiver of
    a 2.1.x sender reports 100 % loss with every datagram there (DESIGN.md section 5).
    One receiver of each kind is asked, not each of 16 fan-out pods."""
    asked: dict[str, tuple[int, int] | None] = {}
    first_of_each: dict[str, Host] = {}
    for ep in endpoints:
        first_of_each.setdefault(ep.spec.name, ep.host)
    for host in [sender, *first_of_each.values()]:
        if host.name not in asked:
            out = host.run(["iperf", "--version"], timeout=15, check=False)
            asked[host.name] = iperf.parse_version(out.stdout + out.stderr)
    if len({v for v in asked.values() if v is not None}) > 1:
        said = ", ".join(f"{name} {v[0]}.{v[1]}" if v else f"{name} unknown"
                         for name, v in asked.items())
        raise BackendError(f"iperf versions differ ({said}): iperf 2.0.x and 2.1.x do not "
                           "agree on the end of a stream, and every count would be wrong; "
                           "run the same iperf at both ends")


def _tail(text: str) -> str:
    return text.strip()[-300:]


def _rate(bps: int) -> str:
    return f"{format_rate(bps)}bit/s"


def _wait_joined(endpoints: list[Endpoint], group: str) -> None:
    """Wait until each receiver's namespace shows the group joined on its interface."""
    want = ipaddress.IPv4Address(group)
    pending = list(endpoints)
    deadline = time.monotonic() + JOIN_TIMEOUT_S
    while pending:
        for ep in list(pending):
            assert ep.process is not None
            if not ep.process.running():
                res = ep.process.stop()
                raise BackendError(f"receiver {ep.name} on {ep.host.name} exited before "
                                   f"joining {group} on {ep.iface} (exit status "
                                   f"{res.exit_status}): {_tail(res.stderr or res.stdout)}")
            igmp = ep.host.run(["cat", "/proc/net/igmp"], timeout=10).stdout
            if want in iperf.parse_igmp(igmp).get(ep.iface, set()):
                pending.remove(ep)
        if pending and time.monotonic() > deadline:
            names = "\n".join(_not_joined(ep) for ep in pending)
            raise BackendError(f"receivers did not join {group} within {JOIN_TIMEOUT_S:g} s:"
                               f"\n{names}")
        if pending:
            time.sleep(JOIN_POLL_S)


def _not_joined(ep: Endpoint) -> str:
    assert ep.process is not None
    said = _tail(ep.process.error_output())
    return f"  - {ep.name} on {ep.host.name} ({ep.iface})" + (f": iperf said: {said}"
                                                             if said else "")


def _wait_final_reports(endpoints: list[Endpoint], step: Step) -> None:
    """Receivers that got data print a final report once the stream ends: wait for those
    (one grace period for all of them, not one each)."""
    deadline = time.monotonic() + FINAL_REPORT_GRACE_S
    while True:
        outputs = [ep.process.output() for ep in endpoints if ep.process is not None]
        got_data = [out for out in outputs if out.strip()]
        reported = [out for out in got_data if iperf.has_final_report(out)]
        step.progress(f"{len(reported)}/{len(got_data)} final reports")
        if len(reported) == len(got_data) or time.monotonic() >= deadline:
            return
        time.sleep(0.05)


def _collect(endpoints: list[Endpoint], artifacts: RunArtifacts, case_name: str,
             step: Step | None) -> None:
    """Stop every receiver and keep its output. All are asked to end first, then each is
    waited for, so N receivers take one grace period, not N."""
    pending = [ep for ep in endpoints if ep.process is not None and not ep.collected]
    for ep in pending:
        assert ep.process is not None
        ep.reported_before_stop = iperf.has_final_report(ep.process.output())
        ep.process.terminate()
    for done, ep in enumerate(pending, 1):
        assert ep.process is not None
        res = ep.process.stop()
        ep.output = res.stdout
        ep.collected = True
        artifacts.write_receiver(case_name, ep.name, res)
        if step is not None:
            step.progress(f"{done}/{len(pending)} receivers collected")


def _outcome(case: Case, endpoints: list[Endpoint], sent: int | None, error: str | None,
             started: float, captured: tuple[CaptureOutcome, ...] = (),
             port_counts: dict[str, tuple[int, int]] | None = None) -> CaseOutcome:
    receivers = [_receiver_outcome(ep, sent) for ep in endpoints]
    s = case.scenario
    counts = port_counts or {}
    if error is None and s.expect_port and not counts:
        error = "the lab switch's port counters were not read"
    ports = [PortOutcome(p.host, p.traffic, *counts.get(p.host, (0, 0)),
                         verdict=judge_port(p.traffic, *counts.get(p.host, (0, 0)), sent,
                                            iperf.UDP_PAYLOAD_BYTES))
             for p in s.expect_port]
    if error is None:
        doubtful = [f"{ep.name}: {why}" for ep in endpoints
                    if (why := iperf.parse_server_csv(ep.output).inconsistent)]
        error = "\n".join(doubtful) if doubtful else None
    if error is not None:
        verdict = "error"
        # Counts are kept, but a case that went wrong judges no receiver: a FAIL beside
        # the run's ERROR would blame the network for what the lab did.
        receivers = [r.judged("error") for r in receivers]
        ports = [PortOutcome(p.host, p.expect, p.packets, p.bytes, "error") for p in ports]
    else:
        verdict = "pass" if receivers and all(r.verdict == "pass" for r in receivers) \
            and all(p.verdict == "pass" for p in ports) else "fail"
    return CaseOutcome(name=case.name, scenario=s.name, file=str(s.source), verdict=verdict,
                       error=error, group=str(s.group), rate_bps=case.rate,
                       duration_s=s.duration, sent=sent,
                       elapsed_s=round(time.time() - started, 3), receivers=tuple(receivers),
                       captures=captured, sent_rate_bps=iperf.sent_rate_bps(sent, s.duration),
                       ports=tuple(ports))


def _receiver_outcome(ep: Endpoint, sent: int | None) -> ReceiverOutcome:
    report = iperf.parse_server_csv(ep.output)
    received = report.received
    lost = max(sent - received, 0) if sent is not None else None
    loss_pct = round(100.0 * lost / sent, 3) if sent and lost is not None else None
    return ReceiverOutcome(
        name=ep.name, receiver=ep.spec.name, placement=ep.spec.placement,
        host=ep.spec.node_of(ep.name),
        iface=ep.iface, attachment=ep.spec.attachment, received=received, lost=lost,
        loss_pct=loss_pct, iperf_lost=report.lost, jitter_ms=report.jitter_ms,
        rate_bps=round(report.rate_bps), complete=report.complete and ep.reported_before_stop,
        expect=ep.spec.expect.describe(), verdict=judge(ep.spec.expect, sent, received),
        intervals=report.intervals)


def judge(expect: Expectation, sent: int | None, received: int) -> str:
    if not expect.receive:
        return "pass" if received == 0 else "fail"
    if not sent:
        return "fail"
    return "pass" if received * 100.0 >= sent * expect.min_received_pct - 1e-9 else "fail"
