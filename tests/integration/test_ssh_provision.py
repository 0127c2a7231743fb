"""The SSH host and the provisioning engine against a real sshd in a namespace."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lab.errors import BackendError, CommandFailed
from lab.remote.provision import PROVISION_DIR, Provisioner, Step, load_steps
from lab.remote.ssh import SshHost
from lab.ui import Reporter
from tests.support import REPO

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
    # The cause in one line, the log to read; not the step's whole command line.
    assert "failed (exit status 7): disk on fire" in message, message
    assert f"log: {tmp_path / 'logs' / 'sshtest' / 'breaks.log'}" in message
    assert "bash -s" not in message and "env " not in message
    log = (tmp_path / "logs" / "sshtest" / "breaks.log").read_text()
    assert re.match(r"# attempt 1, ended \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00: exit status 7",
                    log)
    assert "about to fail" in log and "disk on fire" in log
    assert not (tmp_path / "s" / "steps" / "breaks").exists()  # not recorded as done


def test_a_step_with_no_way_out_is_not_retried_and_says_what_to_do(sshd_host: SshHost,
                                                                   tmp_path: Path) -> None:
    """Exit 76 (lib.sh's "no network way out"): one attempt, the cause, and the hint."""
    script = tmp_path / "offline.sh"
    script.write_text("echo 'Err:1 http://deb.debian.org bookworm InRelease'\n"
                      "lab_fail 76 \"apt reaches none of its mirrors: Temporary failure "
                      "resolving 'deb.debian.org'\"\n")
    engine = Provisioner([Step("offline", script, ("node",), 30, 600)], tmp_path / "logs",
                         Reporter(quiet=True), str(tmp_path / "s"))
    start = time.monotonic()
    with pytest.raises(BackendError) as info:
        engine.provision([(sshd_host, "node", {})])
    assert time.monotonic() - start < 20  # not retried for its 600 s
    message = str(info.value)
    assert ("sshtest: step offline failed (exit status 76): apt reaches none of its mirrors: "
            "Temporary failure resolving 'deb.debian.org'") in message, message
    assert "kubernetes.provision: false" in message and ", 2 attempts" not in message


def test_ctrl_c_ends_the_remote_step_within_seconds(sshd_host: SshHost, tmp_path: Path) -> None:
    """SIGINT to a process provisioning over SSH ends the step on the host, its children
    too, by the session it recorded: not when the step would have ended (300 s)."""
    started, child = tmp_path / "started", tmp_path / "child.pid"
    script = tmp_path / "long.sh"
    script.write_text(f"sleep 300 & echo $! > {child}; echo $$ > {started}; wait\n")
    driver = tmp_path / "drive.py"
    driver.write_text(
        "import sys\nfrom pathlib import Path\n"
        "from lab.remote.provision import Provisioner, Step\n"
        "from lab.remote.ssh import SshHost, SshTarget\nfrom lab.ui import Reporter\n"
        "host = SshHost('sshtest', SshTarget('sshtest', sys.argv[1], int(sys.argv[2]), "
        "'root', sys.argv[3]), sudo=False)\n"
        "step = Step('long', Path(sys.argv[4]), ('node',), 600, 0)\n"
        "Provisioner([step], Path(sys.argv[5]), Reporter(quiet=True), sys.argv[6])"
        ".provision([(host, 'node', {})])\n")
    t = sshd_host.target
    proc = subprocess.Popen([sys.executable, str(driver), t.hostname, str(t.port),
                             t.identity_file, str(script), str(tmp_path / "logs"),
                             str(tmp_path / "s")], cwd=REPO, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while not started.exists() and time.monotonic() < deadline:  # the step runs
            time.sleep(0.05)
        assert started.exists(), proc.stderr.read() if proc.poll() is not None else ""
        sleeper = int(child.read_text())
        start = time.monotonic()
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
            raise AssertionError(f"still running 30 s after SIGINT: {proc.stderr.read()}; "
                                 f"remote: {sorted(p.name for p in (tmp_path / 's').rglob('*'))}"
                                 ) from None
        stopped_in = time.monotonic() - start
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert proc.returncode != 0 and stopped_in < 10, (stopped_in, proc.stderr.read())
    deadline = time.monotonic() + 10
    while Path(f"/proc/{sleeper}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not Path(f"/proc/{sleeper}").exists()  # the step's child ended with it


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
    # The bundle first: every later step may install from it.
    assert names[:4] == ["bundle", "lab-nic", "iperf", "sysctl"]
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


def test_a_step_that_declares_lab_nic_reruns_when_the_nic_changes(sshd_host: SshHost,
                                                                  tmp_path: Path) -> None:
    """lab-nic leaves LAB_NIC in $LAB_STATE_DIR/env; a later step that declares it (flannel's
    --iface) reruns when another NIC holds the lab address, and only then."""
    nic_file, out = tmp_path / "nic", tmp_path / "out"
    finder = tmp_path / "finder.sh"
    finder.write_text(f'mkdir -p "$LAB_STATE_DIR"; echo "LAB_NIC=$(cat {nic_file})" '
                      '> "$LAB_STATE_DIR/env"\n')
    user = tmp_path / "user.sh"
    user.write_text(f'echo "$LAB_NIC" >> {out}\n')
    steps = [Step("finder", finder, ("node",), 30, 30, params=("ROUND",)),
             Step("user", user, ("node",), 30, 30, params=("LAB_NIC",))]
    engine = Provisioner(steps, tmp_path / "logs", Reporter(quiet=True), str(tmp_path / "s"))
    nic_file.write_text("eth1\n")
    assert [o.action for o in engine.provision([(sshd_host, "node", {"ROUND": "1"})])] == \
        ["ran", "ran"]
    assert [o.action for o in engine.provision([(sshd_host, "node", {"ROUND": "1"})])] == \
        ["skipped", "skipped"]
    nic_file.write_text("enp0s8\n")  # the box now names it otherwise
    assert [o.action for o in engine.provision([(sshd_host, "node", {"ROUND": "2"})])] == \
        ["ran", "ran"]
    assert out.read_text() == "eth1\nenp0s8\n"


def test_a_step_past_its_timeout_is_ended_on_the_host_too(sshd_host: SshHost,
                                                          tmp_path: Path) -> None:
    """At the timeout the SSH channel closes; the step's session would run on (and hold
    apt's locks): the engine ends it there by its recorded pid."""
    child = tmp_path / "child.pid"
    script = tmp_path / "slow.sh"
    script.write_text(f"sleep 300 & echo $! > {child}; wait\n")
    engine = Provisioner([Step("slow", script, ("node",), 2, 0)], tmp_path / "logs",
                         Reporter(quiet=True), str(tmp_path / "s"))
    with pytest.raises(BackendError, match=r"step slow failed \(timed out after 2 s\)"):
        engine.provision([(sshd_host, "node", {})])
    sleeper = int(child.read_text())
    deadline = time.monotonic() + 10
    while Path(f"/proc/{sleeper}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not Path(f"/proc/{sleeper}").exists()


def test_a_step_waiting_for_a_role_runs_after_it_with_its_late_parameters(
        sshd_host: SshHost, tmp_path: Path) -> None:
    """Two hosts of one sshd (a control plane and a worker): the worker's join waits for
    the control plane's init across hosts, gets what only the control plane can make
    (late_env) when it must run, and a done join neither asks for it nor reruns with it."""
    from lab.remote.ssh import SshHost as Ssh

    out = tmp_path / "order.txt"
    init, join = tmp_path / "init.sh", tmp_path / "join.sh"
    # The init is slow on purpose: a join that did not wait would write first.
    init.write_text('sleep 1; echo init >> "$OUT"\n')
    join.write_text('grep -qx init "$OUT" || exit 9; echo "join $LAB_TOKEN $LAB_CA" >> "$OUT"\n')
    steps = [Step("init", init, ("control-plane",), 30, 30),
             Step("join", join, ("worker",), 30, 30, params=("LAB_CA",),
                  waits_for="control-plane")]
    made: list[str] = []
    ca = ["ca1"]

    def token() -> dict[str, str]:
        made.append(f"t{len(made)}")
        return {"LAB_TOKEN": made[-1]}

    worker = Ssh("worker", sshd_host.target, sudo=False)
    try:
        def engine() -> Provisioner:
            return Provisioner(steps, tmp_path / "logs", Reporter(quiet=True),
                               str(tmp_path / "state"), late_env={"join": token},
                               between_rounds=lambda: {"LAB_CA": ca[0]})

        hosts = [(sshd_host, ("node", "control-plane"), {"OUT": str(out)}),
                 (worker, ("node", "worker"), {"OUT": str(out)})]
        first = engine().provision(hosts)
        assert [(o.host, o.step, o.action) for o in first] == [
            ("sshtest", "init", "ran"), ("worker", "join", "ran")]
        assert out.read_text() == "init\njoin t0 ca1\n" and made == ["t0"]
        assert engine().total_for(("node", "worker")) == 1
        again = engine().provision(hosts)
        assert [o.action for o in again] == ["skipped", "skipped"]
        assert made == ["t0"]  # no token made for a join that is done
        # What only exists after the first round (a new cluster's CA) reruns the join.
        ca[0] = "ca2"
        anew = engine().provision(hosts)
        assert [o.action for o in anew] == ["skipped", "ran"]
        assert out.read_text().splitlines()[-1] == "join t1 ca2"
    finally:
        worker.close()


def test_files_are_sent_in_one_stream_and_replace_the_folder(sshd_host: SshHost,
                                                             tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "debs").mkdir(parents=True)
    big = src / "debs" / "a.deb"
    big.write_bytes(bytes(range(256)) * 40_000)  # 10 MB: more than one SSH window
    (src / "SHA256SUMS").write_text("x  debs/a.deb\n")
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "stale").write_text("from before")
    sshd_host.send_files([(big, "debs/a.deb"), (src / "SHA256SUMS", "SHA256SUMS")],
                         str(dest), timeout=60)
    assert (dest / "debs" / "a.deb").read_bytes() == big.read_bytes()
    assert (dest / "SHA256SUMS").read_text() == "x  debs/a.deb\n"
    assert not (dest / "stale").exists()  # the folder is the bundle's, nothing else
    # A folder that cannot be made is an error that says what failed.
    (tmp_path / "file").write_text("")
    with pytest.raises(BackendError, match=r"unpacking files in .*file/sub failed"):
        sshd_host.send_files([(big, "a.deb")], str(tmp_path / "file" / "sub"), timeout=60)


def test_files_come_back_in_one_stream_by_their_names(sshd_host: SshHost,
                                                      tmp_path: Path) -> None:
    there = tmp_path / "there"
    (there / "a").mkdir(parents=True)
    (there / "b").mkdir()
    (there / "a" / "one.deb").write_bytes(b"1" * 3_000_000)
    (there / "b" / "two.tar").write_text("two")
    got = sshd_host.receive_files([str(there / "a" / "one.deb"), str(there / "b" / "two.tar")],
                                  tmp_path / "here", timeout=60)
    assert sorted(p.name for p in got) == ["one.deb", "two.tar"]
    assert (tmp_path / "here" / "one.deb").read_bytes() == b"1" * 3_000_000
    assert (tmp_path / "here" / "two.tar").read_text() == "two"
    with pytest.raises(BackendError, match=r"reading 1 files failed \(exit status 2\)"):
        sshd_host.receive_files([str(there / "missing")], tmp_path / "here", timeout=60)
