"""The provisioning engine: ordered, idempotent steps per host, hosts in parallel.

A step is a script from `provision/`, sent after `provision/lib.sh` (shared helpers).
Before running it, the engine reads the step's marker on the host
(`$LAB_STATE_DIR/steps/<step>`): if it holds the digest of this script and these
parameters, the step is done and skipped; a changed script reruns. Exit status 75 means
transient (retried until the step's deadline), 76 that the host has no network way out
(never retried); anything else fails the host. A step may leave `KEY=VALUE` lines in
`$LAB_STATE_DIR/env` for the steps after it (lab-nic leaves LAB_NIC). Each attempt's
output is kept, with its time, under `.lab/<lab>/logs/<host>/`.

A host has one or more roles (a node is also the control plane or a worker). A step that
`waits_for` a role runs in a second round, once every host has done its other steps: a
worker joins the cluster after the control plane is up. What such a step needs from
another host (a join token) comes from `late_env`, asked for only when the step must run.

A step runs in a session of its own on the host, its pid in `$LAB_STATE_DIR/running/`:
Ctrl-C (or SIGTERM) ends the whole step there at once, by that pid, instead of waiting
for it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import yaml

from lab import names
from lab.command import Result
from lab.errors import BackendError
from lab.host import Host
from lab.model import fields as f
from lab.model.fields import Problems, Section
from lab.ui import Reporter

PROVISION_DIR = Path(__file__).resolve().parents[2] / "provision"  # lab/remote/ -> repo
LIBRARY = PROVISION_DIR / "lib.sh"
DEFAULT_STATE_DIR = names.VM_STATE_DIR
TRANSIENT_EXIT = 75
NO_NETWORK_EXIT = 76
RETRY_WAIT_S = 5.0
CANCEL_TIMEOUT_S = 15.0
NO_NETWORK_HINT = ("the VMs cannot reach the internet, which this step needs (packages, "
                   "images). Give them a way out (a network with NAT; behind a proxy, set "
                   "it on the VMs), or set `kubernetes.provision: false` in lab.yaml to "
                   "bring the lab up without Kubernetes (host scenarios only)")
# Lines that say why apt or curl failed, when a step printed no "cause:" line.
_TELLING = ("cause: ", "Temporary failure resolving", "Could not resolve", "Failed to fetch",
            "Network is unreachable", "No route to host", "Connection timed out",
            "E: ", "error: ", "Error: ")


# A host's roles: its lab role (source, node), and for a node its part in the cluster.
ROLES = ("source", "node", "control-plane", "worker")
Roles = str | tuple[str, ...]


def _roles(roles: Roles) -> tuple[str, ...]:
    return (roles,) if isinstance(roles, str) else roles


class StepFailed(BackendError):
    """A step failed on a host: which, why in one line, where its log is, what to do."""

    def __init__(self, host: str, step: Step, result: Result, attempts: int, log: Path
                 ) -> None:
        self.host, self.step, self.result, self.log = host, step.name, result, log
        status = (f"timed out after {result.timeout:g} s" if result.timed_out
                  else f"exit status {result.exit_status}")
        tries = f", {attempts} attempts" if attempts > 1 else ""
        lines = [f"{host}: step {step.name} failed ({status}{tries}): {explain(result)}",
                 f"  log: {log}"]
        if result.exit_status == NO_NETWORK_EXIT:
            lines.append(f"  {NO_NETWORK_HINT}")
        super().__init__("\n".join(lines))


def explain(result: Result) -> str:
    """The one line that says why: the step's own "cause:", else apt's or curl's telling
    line, else the last line it printed on stderr, else on stdout."""
    err = [ln.strip() for ln in result.stderr.splitlines() if ln.strip()]
    out = [ln.strip() for ln in result.stdout.splitlines() if ln.strip()]
    for marker in _TELLING:
        for line in err + out:
            if marker in line:
                return line.removeprefix("cause: ")[:300]
    last = err or out
    return last[-1][:300] if last else "it printed nothing"


@dataclass(frozen=True)
class Step:
    name: str
    script: Path
    roles: tuple[str, ...]
    timeout_s: int
    retry_for_s: int
    tier: str = "base"
    params: tuple[str, ...] | None = None  # None: every parameter counts
    waits_for: str | None = None  # a role whose hosts finish their other steps first


@dataclass(frozen=True)
class StepOutcome:
    host: str
    step: str
    action: str  # "ran" or "skipped"
    seconds: float
    attempts: int


def load_steps(path: Path = PROVISION_DIR / "steps.yaml") -> list[Step]:
    problems = Problems(str(path))
    data = yaml.safe_load(path.read_text())
    holder = Section(problems, "", {"steps": data})
    steps = []
    for key, item in holder.items("steps"):
        s = Section(problems, key, item)
        name = s.get("name", f.name)
        script = s.get("script", f.ref)
        roles = s.get("roles", lambda v: tuple(f.choice(*ROLES)(r) for r in v))
        timeout = s.get("timeout", f.integer(1, 7200), 300)
        retry_for = s.get("retry_for", f.integer(0, 7200), 300)
        tier = s.get("tier", f.choice("base", "kubernetes"), "base")
        params = s.get("params", lambda v: tuple(f.string(p) for p in v), None)
        waits_for = s.get("waits_for", f.choice(*ROLES), None)
        s.done()
        if script and not (path.parent / script).is_file():
            problems.add(s.key("script"), f"{script} does not exist in {path.parent}")
        if name and script and roles and timeout is not None and retry_for is not None:
            steps.append(Step(name, path.parent / script, roles, timeout, retry_for,
                              tier or "base", params, waits_for))
    problems.raise_if_any()
    return steps


def step_digest(step: Step, env: dict[str, str]) -> str:
    """What makes a step done: its script and the parameters it declares."""
    h = hashlib.sha256(LIBRARY.read_bytes() + step.script.read_bytes())
    used = env if step.params is None else {k: env.get(k) for k in step.params}
    h.update(json.dumps(used, sort_keys=True).encode())
    return h.hexdigest()[:32]


class Provisioner:
    def __init__(self, steps: list[Step], log_dir: Path, reporter: Reporter,
                 state_dir: str = DEFAULT_STATE_DIR,
                 on_step: Callable[[StepOutcome], None] | None = None,
                 late_env: Mapping[str, Callable[[], dict[str, str]]] | None = None,
                 between_rounds: Callable[[], dict[str, str]] | None = None) -> None:
        self.steps = steps
        self.on_step = on_step  # called (under a lock) after each step, done or skipped
        # Per step name: parameters made only when that step must run (never for a step
        # that is done), once per provisioning, and never part of its digest.
        self.late_env = dict(late_env or {})
        self._late: dict[str, dict[str, str]] = {}
        self._late_lock = threading.Lock()
        # Parameters of the second round that only exist once the first is done (the
        # cluster's CA hash): made once, on this thread, and part of the digests that
        # declare them.
        self.between_rounds = between_rounds
        self.log_dir = log_dir
        self.reporter = reporter
        self.state_dir = state_dir
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.failures: list[StepFailed] = []

    def provision(self, hosts: list[tuple[Host, Roles, dict[str, str]]]) -> list[StepOutcome]:
        """Provision each (host, roles, env) in parallel; one aggregate error names every
        host that failed, after all hosts have finished. Steps that wait for a role run in
        a second round, after the first succeeded on every host. Interrupted (Ctrl-C,
        SIGTERM), it ends the steps running on the hosts and returns within seconds."""
        first = self._round(hosts, waiting=False)
        if not any(s.waits_for for s in self.steps) or self._stop.is_set():
            return first
        more = self.between_rounds() if self.between_rounds else {}
        return first + self._round([(h, r, {**env, **more}) for h, r, env in hosts],
                                   waiting=True)

    def _round(self, hosts: list[tuple[Host, Roles, dict[str, str]]], waiting: bool
               ) -> list[StepOutcome]:
        outcomes: list[StepOutcome] = []
        failures: list[str] = []
        pool = ThreadPoolExecutor(max_workers=max(len(hosts), 1))
        futures = {pool.submit(self.provision_host, h, roles, env, waiting): h
                   for h, roles, env in hosts}
        try:
            for future, host in futures.items():
                try:
                    outcomes.extend(future.result())
                except StepFailed as exc:
                    self.failures.append(exc)
                    failures.append(str(exc))
                except BackendError as exc:
                    failures.append(f"{host.name}: {exc}")
        except BaseException:
            self._stop.set()
            for host in futures.values():
                self._cancel(host)
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        pool.shutdown(wait=True)
        if failures:
            raise BackendError("provisioning failed:\n" + "\n".join(failures))
        return outcomes

    def _pidfile(self) -> str:
        return f"{self.state_dir}/running/step.pid"

    def _cancel(self, host: Host) -> None:
        """End the step running on `host`: its whole session, by the pid it recorded."""
        # The file goes with the kill: the wrapper that would remove it is killed too.
        script = ('pid=$(cat "$1" 2>/dev/null) && [ -n "$pid" ] && rm -f "$1" && '
                  'kill -TERM -- "-$pid"')
        with contextlib.suppress(BackendError):  # the host is gone: nothing runs there
            # bash: its kill takes `--` before a negative pid (a process group); dash's not.
            host.run(["bash", "-c", script, "bash", self._pidfile()], timeout=CANCEL_TIMEOUT_S,
                     check=False, what=f"stop the step running on {host.name}")

    def steps_for(self, roles: Roles) -> list[Step]:
        return [s for s in self.steps if set(_roles(roles)) & set(s.roles)]

    def provision_host(self, host: Host, roles: Roles, env: dict[str, str],
                       waiting: bool = False) -> list[StepOutcome]:
        """The host's steps of one round: those that wait for a role, or the others."""
        env = {**env, "LAB_STATE_DIR": self.state_dir}
        steps = [s for s in self.steps_for(roles) if bool(s.waits_for) == waiting]
        if not steps:
            return []
        outcomes = []
        # What every step left, in one round trip: a ready host costs one command, not
        # one a step. Read again after a step ran (it may have changed later markers).
        markers, left = self._read_host(host, steps)
        for step in steps:
            if self._stop.is_set():
                break
            env.update(left)
            outcome = self._step(host, step, env, markers.get(step.name, ""))
            outcomes.append(outcome)
            if self.on_step is not None:
                with self._lock:
                    self.on_step(outcome)
            if outcome.action == "ran":
                markers, left = self._read_host(host, steps)
        return outcomes

    def _read_host(self, host: Host, steps: list[Step]) -> tuple[dict[str, str],
                                                                  dict[str, str]]:
        """Each step's marker (its digest, "" if none) and the KEY=VALUE lines earlier
        steps left in $LAB_STATE_DIR/env (LAB_NIC)."""
        script = ('d=$1; shift; for s in "$@"; do printf "marker %s %s\n" "$s" '
                  '"$(cat "$d/steps/$s" 2>/dev/null)"; done; '
                  'sed "s/^/env /" "$d/env" 2>/dev/null; true')
        out = host.run(["sh", "-c", script, "sh", self.state_dir, *[s.name for s in steps]],
                       timeout=30, what=f"read {host.name}'s step markers").stdout
        markers: dict[str, str] = {}
        left: dict[str, str] = {}
        for line in out.splitlines():
            kind, _, rest = line.partition(" ")
            if kind == "marker":
                name, _, digest = rest.partition(" ")
                markers[name] = digest.strip()
            elif kind == "env" and "=" in rest:
                key, value = rest.split("=", 1)
                if key.startswith("LAB_") and key.isupper():
                    left[key] = value
        return markers, left

    def total_for(self, roles: Roles) -> int:
        return len(self.steps_for(roles))

    def _late_env(self, step: Step) -> dict[str, str]:
        make = self.late_env.get(step.name)
        if make is None:
            return {}
        with self._late_lock:  # once, whichever host's thread asks first
            if step.name not in self._late:
                self._late[step.name] = make()
            return self._late[step.name]

    def _step(self, host: Host, step: Step, env: dict[str, str], recorded: str
              ) -> StepOutcome:
        start = time.monotonic()
        digest = step_digest(step, env)
        marker = f"{self.state_dir}/steps/{step.name}"
        if recorded == digest:
            self._say(f"{host.name}: {step.name} already done")
            return StepOutcome(host.name, step.name, "skipped", time.monotonic() - start, 0)
        # Made now that the step must run; outside the digest (a fresh token each time).
        env = {**env, **self._late_env(step)}
        script = LIBRARY.read_text() + "\n" + step.script.read_text()
        # A session of its own whose pid is recorded: `_cancel` ends all of it by that pid.
        # The file is there only while the step runs: a stale pid is never signalled.
        record_pid = ('mkdir -p "$(dirname "$1")" && echo $$ > "$1" || exit 1; f=$1; shift; '
                      '"$@"; s=$?; rm -f "$f"; exit $s')
        argv = ["setsid", "-w", "sh", "-c", record_pid, "sh", self._pidfile(),
                "env", *[f"{k}={v}" for k, v in sorted(env.items())], "bash", "-s"]
        deadline = start + step.retry_for_s
        attempts = 0
        log = self.log_dir / host.name / f"{step.name}.log"
        while True:
            attempts += 1
            result = host.run(argv, timeout=step.timeout_s, check=False, input=script)
            self._log(log, attempts, result)
            if result.ok or result.exit_status != TRANSIENT_EXIT or \
                    time.monotonic() > deadline or self._stop.is_set():
                break
            self._say(f"{host.name}: {step.name} not ready yet (attempt {attempts}: "
                      f"{explain(result)}); retrying")
            time.sleep(RETRY_WAIT_S)
        if result.timed_out:
            # The SSH channel closed at the timeout; the step's session may still run there.
            self._cancel(host)
        if not result.ok:
            raise StepFailed(host.name, step, result, attempts, log)
        host.run(["sh", "-c", 'mkdir -p "$(dirname "$1")" && printf "%s\\n" "$2" > "$1"', "sh",
                  marker, digest], timeout=30, what=f"record step {step.name}")
        seconds = time.monotonic() - start
        self._say(f"{host.name}: {step.name} done ({seconds:.1f} s)")
        return StepOutcome(host.name, step.name, "ran", seconds, attempts)

    def _log(self, path: Path, attempt: int, result: Result) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        ended = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        with path.open("a") as out:
            out.write(f"# attempt {attempt}, ended {ended}: exit status {result.exit_status}"
                      f"{' (timed out)' if result.timed_out else ''} after "
                      f"{result.duration:.1f} s\n# stdout\n{result.stdout}\n# stderr\n"
                      f"{result.stderr}\n")

    def _say(self, text: str) -> None:
        with self._lock:
            self.reporter.info(text)
