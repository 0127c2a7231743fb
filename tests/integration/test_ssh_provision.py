"""The SSH host and the provisioning engine against a real sshd in a namespace."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from lab.errors import BackendError, CommandFailed
from lab.remote.provision import PROVISION_DIR, Provisioner, Step, load_steps
from lab.remote.ssh import SshHost
from lab.ui import Reporter

pytestmark = pytest.mark.sshd


def test_run_keeps_exit_status_stdout_stderr_and_input(sshd_host: SshHost) -> None:
    r = sshd_host.run(["sh", "-c", "echo out; echo err >&2; exit 3"], timeout=10, check=False)
    assert (r.exit_status, r.stdout, r.stderr) == (3, "out\n", "err\n")
    assert sshd_host.run(["cat"], timeout=10, input="hello $(id)\n").stdout == "hello $(id)\n"
    # A hostile argument stays one argument: quoted, never interpreted by the remote shell.
    assert sshd_host.run(["echo", "a; touch /tmp/x-injected"], timeout=10).stdout == \
        "a; touch /tmp/x-injected\n"
    assert not Path("/tmp/x-injected").exists()
    with pytest.raises(CommandFailed) as info:
        sshd_host.run(["sh", "-c", "echo boom >&2; exit 4"], timeout=10, what="demo")
    assert "exit status 4" in str(info.value) and "boom" in str(info.value)


def test_run_times_out(sshd_host: SshHost) -> None:
    start = time.monotonic()
    r = sshd_host.run(["sleep", "30"], timeout=1, check=False)
    assert r.timed_out and time.monotonic() - start < 10


def test_background_process_output_and_stop_by_pid(sshd_host: SshHost, tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    proc = sshd_host.start(["sh", "-c", f"echo $$ > {pidfile}; echo ready; exec sleep 60"],
                           timeout=30)
    deadline = time.monotonic() + 10
    while "ready" not in proc.output() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.output() == "ready\n" and proc.running()
    result = proc.stop()
    assert not proc.running() and result.stdout == "ready\n"
    assert not Path(f"/proc/{pidfile.read_text().strip()}").exists()


def _steps(tmp_path: Path, body: str = "echo one >> \"$OUT\"") -> list[Step]:
    script = tmp_path / "one.sh"
    script.write_text(f"set -eu\n{body}\n")
    fail = tmp_path / "fail.sh"
    fail.write_text("echo about to fail; echo 'disk on fire' >&2; exit 7\n")
    return [Step("one", script, ("node",), 30, 30)]


def test_engine_skips_done_steps_and_reruns_changed_ones(sshd_host: SshHost,
                                                         tmp_path: Path) -> None:
    out = tmp_path / "out.txt"
    env = {"OUT": str(out)}
    state = str(tmp_path / "state")
    engine = Provisioner(_steps(tmp_path), tmp_path / "logs", Reporter(quiet=True), state)
    first = engine.provision([(sshd_host, "node", env)])
    assert [o.action for o in first] == ["ran"]
    second = engine.provision([(sshd_host, "node", env)])
    assert [o.action for o in second] == ["skipped"]
    assert out.read_text() == "one\n"  # ran once
    changed = Provisioner(_steps(tmp_path, 'echo two >> "$OUT"'), tmp_path / "logs",
                          Reporter(quiet=True), state)
    assert [o.action for o in changed.provision([(sshd_host, "node", env)])] == ["ran"]
    assert out.read_text() == "one\ntwo\n"
    assert (tmp_path / "logs" / "sshtest" / "one.log").read_text().count("# attempt") == 2
    # A role the step does not apply to runs nothing.
    assert engine.provision([(sshd_host, "source", env)]) == []


def test_engine_reports_failing_step_with_command_status_and_tail(sshd_host: SshHost,
                                                                  tmp_path: Path) -> None:
    fail = Step("breaks", tmp_path / "fail.sh", ("node",), 30, 30)
    (tmp_path / "fail.sh").write_text("echo about to fail; echo 'disk on fire' >&2; exit 7\n")
    engine = Provisioner([fail], tmp_path / "logs", Reporter(quiet=True), str(tmp_path / "s"))
    with pytest.raises(BackendError) as info:
        engine.provision([(sshd_host, "node", {})])
    message = str(info.value)
    assert "sshtest" in message and "breaks" in message and "exit status 7" in message
    assert "disk on fire" in message and "bash -s" in message
    assert not (tmp_path / "s" / "steps" / "breaks").exists()  # not recorded as done


def test_engine_retries_transient_exit_until_it_succeeds(sshd_host: SshHost, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch
                                                         ) -> None:
    import lab.remote.provision as provision

    monkeypatch.setattr(provision, "RETRY_WAIT_S", 0.1)
    counter = tmp_path / "n"
    script = tmp_path / "flaky.sh"
    script.write_text(f'n=$(cat {counter} 2>/dev/null || echo 0); echo $((n+1)) > {counter}\n'
                      f'[ "$n" -ge 2 ] || exit 75\n')
    engine = Provisioner([Step("flaky", script, ("node",), 30, 30)], tmp_path / "logs",
                         Reporter(quiet=True), str(tmp_path / "s"))
    (outcome,) = engine.provision([(sshd_host, "node", {})])
    assert outcome.attempts == 3 and counter.read_text().strip() == "3"


def test_real_lab_nic_step_finds_the_nic_by_address(sshd_host: SshHost, tmp_path: Path) -> None:
    """The shipped lab-nic step, for real, in the sshd's namespace (its NIC is eth0 there)."""
    (nic_step,) = [s for s in load_steps() if s.name == "lab-nic"]
    state = tmp_path / "state"
    engine = Provisioner([nic_step], tmp_path / "logs", Reporter(quiet=True), str(state))
    env = {"LAB_ADDRESS": "10.254.254.2", "LAB_PREFIXLEN": "30"}
    assert [o.action for o in engine.provision([(sshd_host, "node", env)])] == ["ran"]
    assert (state / "lab-nic").read_text() == "eth0\n"
    assert [o.action for o in engine.provision([(sshd_host, "node", env)])] == ["skipped"]
    wrong = {"LAB_ADDRESS": "10.254.254.2", "LAB_PREFIXLEN": "24"}
    with pytest.raises(BackendError, match="expected /24"):
        engine.provision([(sshd_host, "node", wrong)])


def test_shipped_steps_load() -> None:
    names = [s.name for s in load_steps()]
    assert names[:3] == ["lab-nic", "iperf", "sysctl"]
    assert all((PROVISION_DIR / s.script.name).is_file() for s in load_steps())


def test_engine_reruns_a_step_when_a_parameter_it_declares_changes(sshd_host: SshHost,
                                                                   tmp_path: Path) -> None:
    out = tmp_path / "out.txt"
    script = tmp_path / "greet.sh"
    script.write_text('echo "$WHO" >> "$OUT"\n')
    step = Step("greet", script, ("node",), 30, 30, params=("WHO", "OUT"))
    engine = Provisioner([step], tmp_path / "logs", Reporter(quiet=True), str(tmp_path / "s"))
    base = {"OUT": str(out), "WHO": "ann", "UNRELATED": "1"}
    assert [o.action for o in engine.provision([(sshd_host, "node", base)])] == ["ran"]
    # A parameter the step does not declare changes nothing ...
    same = {**base, "UNRELATED": "2"}
    assert [o.action for o in engine.provision([(sshd_host, "node", same)])] == ["skipped"]
    # ... one it declares reruns it.
    other = {**base, "WHO": "bob"}
    assert [o.action for o in engine.provision([(sshd_host, "node", other)])] == ["ran"]
    assert out.read_text() == "ann\nbob\n"


def test_engine_gives_up_on_a_transient_exit_at_its_deadline(sshd_host: SshHost,
                                                             tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch
                                                             ) -> None:
    import lab.remote.provision as provision

    monkeypatch.setattr(provision, "RETRY_WAIT_S", 0.2)
    counter = tmp_path / "n"
    script = tmp_path / "never.sh"
    script.write_text(f'echo x >> {counter}; echo "apt lock held" >&2; exit 75\n')
    engine = Provisioner([Step("never", script, ("node",), 30, 1)], tmp_path / "logs",
                         Reporter(quiet=True), str(tmp_path / "s"))
    with pytest.raises(BackendError) as info:
        engine.provision([(sshd_host, "node", {})])
    message = str(info.value)
    assert "never" in message and "exit status 75" in message and "apt lock held" in message
    attempts = len(counter.read_text().split())
    # Retried for its 1 s (attempts 0.2 s apart plus the SSH round trips), then it stopped.
    assert 2 <= attempts <= 8, attempts
    assert not (tmp_path / "s" / "steps" / "never").exists()


@pytest.mark.netns
def test_failures_on_several_hosts_are_reported_together(tmp_path: Path) -> None:
    """Two hosts (real namespaces) fail, a third succeeds: every host runs to its end and
    one error names both failures with their own output."""
    import os
    import subprocess
    import uuid

    from lab.backends.netns.host import NamespaceHost

    if os.geteuid() != 0:
        pytest.skip("needs root for namespaces")
    tag = uuid.uuid4().hex[:6]
    names = [f"tprov-{tag}-{i}" for i in range(3)]
    for ns in names:
        subprocess.run(["ip", "netns", "add", ns], check=True, timeout=10)
    try:
        script = tmp_path / "by-host.sh"
        script.write_text('echo "$HOSTNUM done" >> "$OUT"\n'
                          '[ "$HOSTNUM" = 0 ] || { echo "host $HOSTNUM broke" >&2; exit 4; }\n')
        step = Step("by-host", script, ("node",), 30, 30)
        engine = Provisioner([step], tmp_path / "logs", Reporter(quiet=True),
                             str(tmp_path / "s"))
        hosts = [(NamespaceHost(f"h{i}", ns), "node",
                  {"HOSTNUM": str(i), "OUT": str(tmp_path / f"out{i}")})
                 for i, ns in enumerate(names)]
        with pytest.raises(BackendError) as info:
            engine.provision(hosts)
        message = str(info.value)
        assert "h1:" in message and "host 1 broke" in message
        assert "h2:" in message and "host 2 broke" in message
        assert "h0:" not in message
        for i in range(3):  # every host ran its step
            assert (tmp_path / f"out{i}").read_text() == f"{i} done\n"
    finally:
        for ns in names:
            subprocess.run(["ip", "netns", "delete", ns], timeout=10)
