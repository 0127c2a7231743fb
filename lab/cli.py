"""The `lab` command. The only place where exceptions become exit codes:
0 all expectations met; 1 a scenario's expectation failed; 2 bad usage or input;
3 the lab or infrastructure failed (or the command was interrupted)."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import signal
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import click

from lab import names, registry
from lab.errors import ConfigError, Interrupted, LabError, UsageError

# What a command needs is imported in the command: `lab --help` or `lab status` of a lab
# that is down must not pay for fabric, rich's tables, the runner (issue: process start).
if TYPE_CHECKING:
    from rich.console import Console

    from lab.backends.base import Backend
    from lab.model.lab import Lab
    from lab.model.scenario import Scenario
    from lab.state import State
    from lab.ui import Reporter

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INFRA = 0, 1, 2, 3
SEED_SCENARIOS = ("host-baseline", "pod-multus", "pod-without-multus")


def exit_code_for(exc: BaseException) -> int:
    if isinstance(exc, ConfigError | UsageError | click.UsageError | click.BadParameter):
        return EXIT_USAGE
    return EXIT_INFRA


def verdict_exit_code(verdict: str) -> int:
    return {"pass": EXIT_OK, "fail": EXIT_FAILED}.get(verdict, EXIT_INFRA)


@dataclass
class Context:
    file: Path
    backend_option: str | None
    quiet: bool
    _lab: Lab | None = None
    # Options only some backends take (lab.registry), as given on the command line.
    options: dict[str, str | None] = field(default_factory=dict)
    _stdout: Console | None = None
    _reporter: Reporter | None = None

    @property
    def stdout(self) -> Console:
        if self._stdout is None:
            from rich.console import Console

            # Tables are read in terminals and in CI logs alike: not squeezed to 80 columns.
            width = None if sys.stdout.isatty() else 150
            self._stdout = Console(highlight=False, width=width)
        return self._stdout

    @property
    def reporter(self) -> Reporter:
        if self._reporter is None:
            from lab.ui import Reporter

            self._reporter = Reporter(quiet=self.quiet)
        return self._reporter

    @property
    def lab(self) -> Lab:
        if self._lab is None:
            from lab.model.labfile import load_lab

            self._lab = load_lab(self.file)
        return self._lab

    def state(self) -> State:
        from lab.state import State

        return State(names.state_file(self.lab.project_dir, self.lab.name))

    def backend(self, state: State) -> Backend:
        from lab import backends

        recorded = state.backend
        option = None if self.backend_option == registry.AUTO else self.backend_option
        # `--backend auto` asks for auto over the lab file's choice, unless a lab is up.
        name = option or recorded or (registry.AUTO if self.backend_option == registry.AUTO
                                      else self.lab.backend)
        if option and recorded and recorded != option:
            raise UsageError(f"lab {self.lab.name} is up with the {recorded} backend; "
                             f"`lab destroy` it before using --backend {self.backend_option}")
        return backends.make(name, self.lab, state, self.reporter, self.options)

    @contextlib.contextmanager
    def locked(self, what: str) -> Iterator[State]:
        from lab.state import lab_lock

        with lab_lock(names.lab_dir(self.lab.project_dir, self.lab.name), what):
            yield self.state()


_pass_ctx = click.make_pass_decorator(Context)


def pass_ctx(func: Callable[..., None]) -> Callable[..., None]:
    """Pass the Context; accept `--backend` after the command too (`lab up --backend netns`)."""

    @functools.wraps(func)
    def wrapper(c: Context, *args: Any, backend: str | None = None, **kwargs: Any) -> None:
        if backend is not None:
            c.backend_option = backend
        func(c, *args, **kwargs)

    option = click.option("--backend", type=click.Choice(registry.CHOICES), default=None,
                          help="Backend (same as before the command).")
    return option(_pass_ctx(wrapper))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-f", "--file", "file", type=click.Path(path_type=Path), default=Path("lab.yaml"),
              show_default=True, help="The lab file.")
@click.option("--backend", type=click.Choice(registry.CHOICES), default=None,
              help="Backend (default: the one the lab is up with, else the lab file's).")
@click.option("-q", "--quiet", is_flag=True, help="No progress lines.")
@click.pass_context
def cli(ctx: click.Context, file: Path, backend: str | None, quiet: bool) -> None:
    """Multicast into Kubernetes pods, as a lab you can bring up, test and throw away."""
    ctx.obj = Context(file, backend, quiet)


def backend_options(func: Callable[..., None]) -> Callable[..., None]:
    """The options that some backends take (lab.registry), each once, into c.options."""

    @functools.wraps(func)
    def wrapper(c: Context, *args: Any, **kwargs: Any) -> None:
        for option in registry.OPTIONS:
            c.options[option.name] = kwargs.pop(option.name)
        func(c, *args, **kwargs)

    for option in registry.OPTIONS:
        wrapper = click.option(f"--{option.name}", type=click.Choice(option.choices),
                               default=None, help=option.help)(wrapper)
    return wrapper


@cli.command()
@click.option("--locked", is_flag=True, help="Install exactly what lab.lock lists (beside "
              "the lab file) and fail naming the first difference.")
@click.option("--bundle", "bundle_dir", type=click.Path(path_type=Path), default=None,
              help="Provision from this offline bundle (`lab bundle`), not the network.")
@pass_ctx
@backend_options
def up(c: Context, locked: bool, bundle_dir: Path | None) -> None:
    """Create the lab's hosts and network (idempotent)."""
    from lab.lockfile import lock as lockfile
    from lab.state import argv_summary

    path = lockfile.path_for(c.file)
    pinned = lockfile.read(path) if locked else None  # a missing or bad lock: before anything
    bundle = _verified_bundle(c, bundle_dir) if bundle_dir is not None else None
    with c.locked(argv_summary()) as state:
        backend = c.backend(state)
        if bundle is not None:
            backend.use_bundle(bundle)
        if pinned is not None:
            if pinned.lab != c.lab.name:
                raise UsageError(f"{path} is the lock of lab {pinned.lab}, not {c.lab.name}")
            backend.pin({h: inv.packages for h, inv in pinned.hosts.items()},
                        pinned.downloads, vars(pinned.box) if pinned.box else None)
        backend.up()
        if pinned is not None:
            _lock(c, backend, path, pinned)
        elif backend.writes_lock:
            try:
                _lock(c, backend, path)
            except LabError as exc:  # the lab is up; the lock is a record of it
                c.reporter.warn(f"lab {c.lab.name} is up, but {path.name} was not written: "
                                f"{str(exc).splitlines()[0]} (`lab lock` tries again)")
    c.reporter.info(f"lab {c.lab.name} is up; next: `lab run` (scenarios in "
                    f"{c.lab.project_dir / 'scenarios'}) or `lab destroy`")


def _lock(c: Context, backend: Backend, path: Path, pinned: Any = None) -> None:
    """Write the lab's lock; with `pinned` (--locked), compare instead, and fail at the
    first difference (the lab stays up, to be looked at)."""
    from lab.errors import BackendError
    from lab.lockfile import lock as lockfile
    from lab.lockfile.make import lock_of

    with c.reporter.step(f"{path.name}: what the hosts are made of"):
        found = lock_of(backend)
    if pinned is not None:
        difference = lockfile.first_difference(pinned, found)
        if difference:
            raise BackendError(f"{path}: the lab that came up is not the locked one: "
                               f"{difference}\n  the lab is up; `lab lock` writes what it "
                               "is, `lab destroy` and `lab up --locked` tries again")
        c.reporter.info(f"lab {c.lab.name} is exactly what {path.name} lists")
    elif lockfile.write(found, path):
        c.reporter.info(f"wrote {path}")


def _verified_bundle(c: Context, folder: Path) -> Any:
    """The bundle, every file checked against its manifest before anything is made."""
    from lab.bundle import manifest

    bundle = manifest.read(folder)
    with c.reporter.step(f"check the bundle in {folder} ({len(bundle.files)} files)"):
        manifest.verify(bundle)
    return bundle


@cli.command(name="bundle")
@click.option("--out", type=click.Path(path_type=Path), default=Path("bundle"),
              show_default=True, help="The folder to make (an earlier bundle there is "
              "replaced).")
@click.option("--package", "packages", multiple=True, help="A package to bundle besides "
              "those the steps install (repeatable).")
@click.option("--no-box", is_flag=True, help="Leave the Vagrant box out.")
@click.option("--no-apt", is_flag=True, help="No packages from this machine's apt: only "
              "those the lab's VMs downloaded.")
@pass_ctx
@backend_options
def bundle_cmd(c: Context, out: Path, packages: tuple[str, ...], no_box: bool,
               no_apt: bool) -> None:
    """Gather once what `lab up` downloads into one folder with checksums, for
    `lab up --bundle` on machines (or VMs) with no internet: the distribution's packages
    the steps install with every dependency (from this machine's apt, when it runs the
    box's release); from a lab that is up, what its VMs downloaded (apt's packages, the
    steps' manifests and keys, the node's images); the lab file's box from Vagrant here."""
    import shutil

    from lab.bundle.from_apt import STEP_PACKAGES
    from lab.bundle.make import make

    backend = c.backend(c.state())
    use_apt = not no_apt and shutil.which("apt-get") is not None
    box, folder = None, None
    if not no_box:
        found = backend.box_source()
        if found is None:
            c.reporter.warn("the lab file's box is not on this machine (`vagrant box add` "
                            "it first), or its backend boots none: the bundle has no box")
        else:
            box, folder = found
    wanted = list(dict.fromkeys([*STEP_PACKAGES, *packages]))
    bundle = make(out, wanted, use_apt, backend.bundle_sources(), box, folder, c.reporter)
    size = sum((out / rel).stat().st_size for rel in bundle.files)
    click.echo(f"{out}: {len(bundle.files)} files, {size / 1e6:.1f} MB, for "
               f"{bundle.release}/{bundle.architecture}; `lab up --bundle {out}`")


@cli.command(name="lock")
@pass_ctx
def lock_cmd(c: Context) -> None:
    """Write lab.lock (beside the lab file) from the lab that is up: box, packages,
    images, downloads and versions on every host."""
    from lab.lockfile import lock as lockfile
    from lab.state import argv_summary

    with c.locked(argv_summary()) as state:
        path = lockfile.path_for(c.file)
        _lock(c, c.backend(state), path)
        if path.exists():
            click.echo(str(path))


@cli.command()
@pass_ctx
def destroy(c: Context) -> None:
    """Remove everything the lab created, and nothing else (idempotent)."""
    from lab.state import argv_summary

    with c.locked(argv_summary()) as state:
        c.backend(state).destroy()
        _recover_unfinished_runs(c)


DEFAULT_SNAPSHOT = "ready"


@cli.group()
def snapshot() -> None:
    """Keep a good lab (after `lab up`) to return to with `lab reset`."""


def _snapshot_name(name: str) -> str:
    from lab.model.fields import name as valid_name

    try:
        return valid_name(name)
    except ValueError as exc:
        raise UsageError(f"snapshot name {name!r}: {exc}") from None


@snapshot.command(name="save")
@click.argument("name", default=DEFAULT_SNAPSHOT)
@pass_ctx
def snapshot_save(c: Context, name: str) -> None:
    """Keep every host as it is now under NAME (default: ready; replaces one of that name)."""
    import time

    from lab.state import argv_summary

    name = _snapshot_name(name)
    with c.locked(argv_summary()) as state:
        start = time.monotonic()
        c.backend(state).snapshot_save(name)
    c.reporter.info(f"snapshot {name} of lab {c.lab.name} saved in "
                    f"{time.monotonic() - start:.1f} s; `lab reset {name}` returns to it")


@snapshot.command(name="list")
@pass_ctx
def snapshot_list(c: Context) -> None:
    """The lab's snapshots, newest last."""
    import datetime as dt

    taken = c.backend(c.state()).snapshots()
    if not taken:
        click.echo(f"lab {c.lab.name} has no snapshot; `lab snapshot save` after `lab up`")
    for name, when in sorted(taken.items(), key=lambda item: item[1]):
        stamp = dt.datetime.fromtimestamp(when).isoformat(sep=" ", timespec="seconds")
        click.echo(f"{name}\t{stamp}")


@snapshot.command(name="delete")
@click.argument("name")
@pass_ctx
def snapshot_delete(c: Context, name: str) -> None:
    """Delete snapshot NAME."""
    from lab.state import argv_summary

    with c.locked(argv_summary()) as state:
        c.backend(state).snapshot_delete(_snapshot_name(name))


@cli.command()
@click.argument("name", required=False)
@pass_ctx
def reset(c: Context, name: str | None) -> None:
    """Return every host to snapshot NAME (default: the newest), much faster than a new
    `lab up`: for the attendee whose lab broke."""
    import time

    from lab.state import argv_summary

    with c.locked(argv_summary()) as state:
        backend = c.backend(state)
        taken = backend.snapshots()
        if name is None:
            if not taken:
                raise UsageError(f"lab {c.lab.name} has no snapshot to reset to; take one "
                                 "with `lab snapshot save` after a good `lab up`")
            name = max(taken, key=lambda n: taken[n])
        start = time.monotonic()
        backend.reset(_snapshot_name(name))
    c.reporter.info(f"lab {c.lab.name} reset to snapshot {name} in "
                    f"{time.monotonic() - start:.1f} s")


def _recover_unfinished_runs(c: Context) -> None:
    """Run folders that a killed `lab run` left hidden are kept as interrupted runs (or
    removed when they hold nothing), and the user is told which."""
    from lab.run.artifacts import recover_unfinished

    for line in recover_unfinished(c.lab.project_dir / "results"):
        c.reporter.warn(line)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_ctx
def status(c: Context, as_json: bool) -> None:
    """Show the lab's hosts and pods."""
    from lab.backends.base import LabState
    from lab.report import plain

    st = c.backend(c.state()).status()
    if as_json:
        plain.print_json(st.as_dict())
    elif st.state == LabState.DOWN and not st.problems and not st.selfcheck:
        plain.print_down_status(st)
    else:
        from lab.report.console import print_status

        print_status(c.stdout, st)
    if st.problems:
        raise SystemExit(EXIT_INFRA)


@cli.command()
@click.argument("scenarios", nargs=-1)
@click.option("--report", "with_report", is_flag=True,
              help="Also write the run's report.html (plots as PNG beside it).")
@pass_ctx
def run(c: Context, scenarios: tuple[str, ...], with_report: bool) -> None:
    """Run scenarios (names in scenarios/ or paths; all when none) and write results/."""
    from lab.model.scenario import resolve_scenarios
    from lab.state import argv_summary

    loaded = resolve_scenarios(list(scenarios), c.lab)
    with c.locked(argv_summary()) as state:
        _recover_unfinished_runs(c)
        backend = c.backend(state)
        if backend.status().state != "up":
            raise UsageError(f"lab {c.lab.name} is not up; run `lab up` first")
        verdict = _run_and_report(c, backend, loaded, with_report)
    raise SystemExit(verdict_exit_code(verdict))


def _lab_record(c: Context, backend: Backend) -> dict[str, Any]:
    """What a report shows of the lab a run ran on (the run's lab.json)."""
    from lab.errors import LabError
    from lab.kube.kubectl import dump_all
    from lab.kube.manifests import nad_manifest

    lab = c.lab
    nics: dict[str, str] = {}
    for h in lab.hosts:
        try:
            nics[h.name] = backend.lab_nic(h.name)
        except LabError:
            nics[h.name] = "?"
    att = lab.attachment
    return {"name": lab.name, "backend": backend.name, "subnet": str(lab.subnet),
            "hosts": [{"name": h.name, "role": h.role, "address": str(h.address),
                       "nic": nics[h.name]} for h in lab.hosts],
            "attachment": {"name": att.name, "ifname": att.ifname, "mode": att.mode,
                           "range": f"{att.range_start}-{att.range_end}"},
            "nad": dump_all([nad_manifest(lab, nics[lab.node.name])])}


def _run_and_report(c: Context, backend: Backend, scenarios: list[Scenario],
                    with_report: bool = False) -> str:
    from lab.report.console import print_summary
    from lab.run.artifacts import RunArtifacts
    from lab.run.outcome import overall_verdict, read_summary
    from lab.run.runner import run_case

    cases = [case for s in scenarios for case in s.cases()]
    label = cases[0].name.replace("@", "-at-") if len(cases) == 1 else "run"
    artifacts = RunArtifacts(c.lab.project_dir / "results", label,
                             {"lab": c.lab.name, "backend": backend.name,
                              "lab_file": str(c.lab.source)})
    artifacts.write_lab(_lab_record(c, backend))
    status = "interrupted"
    try:
        for case in cases:
            run_case(case, backend, artifacts, c.reporter)
        status = "complete"
    finally:
        folder = artifacts.finish(status)
        if artifacts.cases:
            print_summary(c.stdout, read_summary(folder))
        c.reporter.info(f"results: {folder}")
    if with_report and artifacts.cases:
        from lab.report.html import write_report

        with c.reporter.step("write the report"):
            page = write_report(folder, read_summary(folder))
        c.reporter.info(f"report: {page}")
    return overall_verdict(artifacts.cases)


@cli.command()
@click.argument("run_dir", required=False, type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print summary.json as it is.")
@_pass_ctx  # reads files only: no --backend after the command
def results(c: Context, run_dir: Path | None, as_json: bool) -> None:
    """Show a run's results (the last run by default)."""
    from lab.report.console import print_summary
    from lab.run.artifacts import latest_run
    from lab.run.outcome import read_summary, to_json

    folder = run_dir or latest_run(c.lab.project_dir / "results")
    summary = read_summary(folder)
    if as_json:
        c.stdout.print_json(json.dumps(to_json(summary)))
    else:
        print_summary(c.stdout, summary)
        c.stdout.print(f"[dim]{folder}[/dim]")


@cli.command()
@click.argument("runs", nargs=-1, type=click.Path(path_type=Path))
@_pass_ctx  # reads files only: no --backend after the command
def report(c: Context, runs: tuple[Path, ...]) -> None:
    """Write a run's report.html (the last run by default); with two runs, A and B side
    by side (compare-<B>/report.html in A's folder). Prints the page's path."""
    from lab.report.html import write_comparison, write_report
    from lab.run.artifacts import latest_run
    from lab.run.outcome import read_summary

    if len(runs) > 2:
        raise UsageError(f"lab report takes one run, or two to compare, not {len(runs)}")
    folders = list(runs) or [latest_run(c.lab.project_dir / "results")]
    for folder in folders:
        if not folder.is_dir():
            raise UsageError(f"{folder} is not a run folder (no such directory)")
    summaries = [read_summary(folder) for folder in folders]
    with c.reporter.step("draw the plots and write the page"):
        if len(folders) == 1:
            page = write_report(folders[0], summaries[0])
        else:
            page = write_comparison(folders[0], summaries[0], folders[1], summaries[1])
    c.stdout.print(str(page.resolve()), markup=False, highlight=False, soft_wrap=True)


@cli.command(name="scenarios")
@_pass_ctx  # reads files only: no --backend after the command
def scenarios_cmd(c: Context) -> None:
    """List the scenario files in scenarios/ with what each shows."""
    from lab.model.labfile import shown_path
    from lab.model.scenario import format_rate, resolve_scenarios
    from lab.report.console import print_scenarios

    folder = c.lab.project_dir / "scenarios"
    paths = sorted(folder.glob("*.yaml"))
    if not paths:
        raise UsageError(f"no scenario files in {shown_path(folder)}")
    rows: list[tuple[str, str, str]] = []
    for path in paths:
        try:
            (s,) = resolve_scenarios([str(path)], c.lab)
        except ConfigError as exc:
            first = exc.problems[0]
            rows.append((path.stem, "invalid", f"{first.key}: {first.message}".strip(": ")))
            continue
        rates = ", ".join(f"{format_rate(r)}bit/s" for r in s.rates)
        receivers = sum(r.count for r in s.receivers)
        summary = s.description.strip().splitlines()[0] if s.description.strip() else ""
        rows.append((s.name, f"{rates}, {s.duration} s, {receivers} receiver(s)", summary))
    print_scenarios(c.stdout, shown_path(folder), rows)
    if any(kind == "invalid" for _, kind, _ in rows):
        raise SystemExit(EXIT_USAGE)


@cli.command()
@click.option("--record", "record_dir", type=click.Path(path_type=Path), default=None,
              help="Keep a terminal recording of the demo in DIR (demo.cast, asciicast v2) "
              "and a picture of its final table (demo.svg).")
@pass_ctx
def demo(c: Context, record_dir: Path | None) -> None:
    """The walkthrough in one command: up, the seed's three scenarios, verdicts, report,
    destroy."""
    from lab.model.scenario import resolve_scenarios
    from lab.state import argv_summary

    paths = [str(c.lab.project_dir / "scenarios" / f"{n}.yaml") for n in SEED_SCENARIOS]
    loaded = resolve_scenarios(paths, c.lab)
    with contextlib.ExitStack() as stack:
        if record_dir is not None:
            stack.enter_context(_recording(c, record_dir))
        with c.locked(argv_summary()) as state:
            backend = c.backend(state)
            try:
                backend.up()
                verdict = _run_and_report(c, backend, loaded, with_report=True)
            finally:
                backend.destroy()
    raise SystemExit(verdict_exit_code(verdict))


@contextlib.contextmanager
def _recording(c: Context, folder: Path) -> Iterator[None]:
    """Record what `lab` prints (both streams) while the block runs; the cast and the SVG
    of the final table are written also when the demo fails."""
    from rich.console import Console

    from lab.report.recording import CastRecorder

    if folder.exists() and not folder.is_dir():
        raise UsageError(f"--record {folder}: not a directory")
    folder.mkdir(parents=True, exist_ok=True)
    width = c.stdout.width if sys.stdout.isatty() else 150
    recorder = CastRecorder(width, 50, f"lab demo ({c.lab.name})")
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = recorder.tee(sys.stdout), recorder.tee(sys.stderr)
    # The table is printed on a console that keeps what it printed, for the SVG.
    c._stdout = Console(highlight=False, width=width, record=True)
    try:
        yield
    finally:
        sys.stdout, sys.stderr = saved
        recorder.write(folder / "demo.cast")
        (folder / "demo.svg").write_text(c._stdout.export_svg(title="lab demo"))
        c.reporter.info(f"recording: {folder / 'demo.cast'} and {folder / 'demo.svg'}")


@cli.command()
@pass_ctx
def logs(c: Context) -> None:
    """Gather what it takes to diagnose this lab into one archive (no keys, no tokens)."""
    from lab.diagnose.archive import collect

    backend = c.backend(c.state())
    project, name = c.lab.project_dir, c.lab.name
    with c.reporter.step("gather logs, versions and state from the lab's hosts"):
        path = collect(c.lab, dict(backend.existing_hosts()), {
            "lab.yaml": c.lab.source,
            "state.json": names.state_file(project, name),
            "vagrant.json": names.vagrant_input_file(project, name),
            "provisioning-logs": names.logs_dir(project, name)},
            names.lab_dir(project, name), backend.kubernetes())
    c.stdout.print(str(path), markup=False, highlight=False)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="One object per interface.")
@pass_ctx
def igmp(c: Context, as_json: bool) -> None:
    """The multicast groups every host and pod of the lab has joined, per interface."""
    from lab.report.console import print_igmp
    from lab.report.igmp import joined

    backend = c.backend(c.state())
    hosts = backend.existing_hosts()
    if not hosts:
        raise UsageError(f"lab {c.lab.name} is not up; run `lab up` first")
    rows = joined(hosts, backend.pod_hosts())
    if as_json:
        c.stdout.print_json(json.dumps([r.as_dict() for r in rows]))
    else:
        print_igmp(c.stdout, c.lab.name, rows)


@cli.command(context_settings={"ignore_unknown_options": True})
@click.argument("point")
@click.option("--iface", default=None, help="Interface (default: a host's lab NIC; a pod's "
              "attachment, else eth0).")
@click.option("--count", type=click.IntRange(1, 10_000_000), default=None,
              help="Stop after N packets.")
@click.option("--seconds", type=click.IntRange(1, 86_400), default=60, show_default=True,
              help="Stop after this long at most.")
@click.argument("filter_words", nargs=-1, type=click.UNPROCESSED)
@pass_ctx
def capture(c: Context, point: str, iface: str | None, count: int | None, seconds: int,
            filter_words: tuple[str, ...]) -> None:
    """Capture on a host or pod of the lab into .lab/<lab>/captures/ and say what IGMP
    and multicast it saw: `lab capture k8s --count 50 -- igmp or udp`. Ctrl-C ends it."""
    import datetime as dt
    import time

    from lab.capture import capture as tcpdump
    from lab.capture import pcap
    from lab.report.console import print_capture

    backend = c.backend(c.state())
    hosts, pods = backend.existing_hosts(), backend.pod_hosts()
    if point in hosts:
        host, nic = hosts[point], iface or backend.lab_nic(point)
    elif point in pods:
        host = pods[point]
        if iface is None:
            have = host.run(["cat", "/proc/net/dev"], timeout=15).stdout
            wanted = c.lab.attachment.ifname
            iface = wanted if f"{wanted}:" in have else "eth0"
        nic = iface
    else:
        raise UsageError(f"no host or pod {point!r} in lab {c.lab.name} now (hosts: "
                         f"{', '.join(hosts) or 'none: is the lab up?'}; pods: "
                         f"{', '.join(pods) or 'none (pods exist while a run runs)'})")
    if filter_words[:1] == ("--",):
        filter_words = filter_words[1:]
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    local = names.captures_dir(c.lab.project_dir, c.lab.name) / f"{point}-{stamp}.pcap"
    with c.reporter.step(f"capture on {point} {nic}"
                         + (f" ({' '.join(filter_words)})" if filter_words else "")) as step:
        running = tcpdump.start(c.lab.name, point, host, nic, seconds=seconds, count=count,
                                filter_words=filter_words)
        try:
            c.reporter.info(f"listening on {point} {nic} for at most {seconds} s"
                            + (f" or {count} packets" if count else "") + "; Ctrl-C ends it")
            while running.process.running():
                said = running.process.error_output().strip().splitlines()
                step.progress(said[-1][:80] if said else "")
                time.sleep(0.2)
        except KeyboardInterrupt:
            c.reporter.warn("stopped by Ctrl-C; keeping what was captured")
        finally:
            running.stop()
            tcpdump.fetch(running, local)
    print_capture(c.stdout, point, nic, local, pcap.read(local))


@cli.command(context_settings={"ignore_unknown_options": True})
@click.argument("host_name")
@click.argument("argv", nargs=-1, type=click.UNPROCESSED)
@pass_ctx
def ssh(c: Context, host_name: str, argv: tuple[str, ...]) -> None:
    """A shell (or ARGV) on a host of the lab: `lab ssh k8s`, `lab ssh k8s -- ip addr`."""
    if host_name not in {h.name for h in c.lab.hosts}:
        raise UsageError(f"no host {host_name!r} (hosts: "
                         f"{', '.join(h.name for h in c.lab.hosts)})")
    from lab import hostos

    backend = c.backend(c.state())
    interactive = backend.interactive_argv(host_name, list(argv))
    sys.stdout.flush()
    raise SystemExit(hand_over(interactive, hostos.system()))


def hand_over(argv: list[str], system: str) -> int:
    """Give the terminal to `argv` (ssh) and end with its exit status. POSIX: `lab` becomes
    it. Windows has no exec (os.execvp there starts the program and returns at once, and
    the shell prompt comes back over the session): wait for it instead."""
    if system == "windows":
        import subprocess

        return subprocess.call(argv)  # the user ends the session: no timeout
    os.execvp(argv[0], argv)
    raise AssertionError("execvp returned")


@cli.command()
@click.argument("scenario", required=False)
@click.option("--master", default="eth1", show_default=True,
              help="The node's lab NIC, as the NAD's macvlan master.")
@_pass_ctx  # reads files only: no --backend after the command
def manifests(c: Context, scenario: str | None, master: str) -> None:
    """Print the NetworkAttachmentDefinition and a scenario's receiver pods as YAML: the
    very objects `lab run` applies on the vagrant backend (or, for a cluster lab, makes
    on your cluster)."""
    from lab.kube.kubectl import dump_all
    from lab.kube.manifests import RECEIVER_ANNOTATION, lab_manifests
    from lab.model.fields import ifname
    from lab.model.scenario import resolve_scenarios
    from lab.run.runner import receiver_pod_specs

    try:
        ifname(master)
    except ValueError as exc:
        raise UsageError(f"--master: {exc}") from None
    pods = []
    if scenario is not None:
        (loaded,) = resolve_scenarios([scenario], c.lab)
        pods = receiver_pod_specs(loaded.cases()[0])
    if c.lab.backend == "cluster" and c.lab.cluster is not None:
        from lab.kube import cluster

        owner = names.kube_owner(c.lab.project_dir, c.lab.name)
        click.echo("# On your cluster (backend: cluster): the NAD and a case's receiver pods "
                   "in\n# the lab's namespace; iperf is each pod's command.")
        click.echo(dump_all([cluster.nad_manifest(c.lab, c.lab.cluster.nic, owner),
                             *cluster.receiver_pods(c.lab, owner, c.lab.cluster.image, pods)]),
                   nl=False)
        return
    docs = lab_manifests(c.lab, master, pods)
    if pods:
        click.echo(f"# Receiver pods only wait: `lab run` runs in each the command of its\n"
                   f"# {RECEIVER_ANNOTATION} annotation (kubectl exec POD -- COMMAND).")
    click.echo(dump_all(docs), nl=False)


@cli.command(name="doctor")
@click.option("--json", "as_json", is_flag=True, help="The checks as a JSON list (name, ok, "
              "message, fix, blocking).")
@pass_ctx
@backend_options
def doctor_cmd(c: Context, as_json: bool) -> None:
    """Check this machine for the chosen backend and say how to fix what is missing."""
    from lab import backends
    from lab.report.console import print_doctor

    name = c.backend_option or c.lab.backend
    checks = backends.checks(name, c.lab, c.options)
    if as_json:
        c.stdout.print_json(json.dumps([ch.as_dict() for ch in checks]))
    else:
        print_doctor(c.stdout, backends.resolve(name), checks)
    if any(not ch.ok and ch.blocking for ch in checks):
        raise SystemExit(EXIT_INFRA)


class _ErrConsole:
    """stderr through rich, imported only when there is something to say."""

    def print(self, text: str, markup: bool = True) -> None:
        from rich.console import Console

        Console(stderr=True, highlight=False, soft_wrap=True).print(text, markup=markup)


def _raise_interrupted(signum: int, frame: FrameType | None) -> None:
    raise Interrupted(f"interrupted by {signal.Signals(signum).name}")


def main(argv: list[str] | None = None) -> int:
    """Entry point: runs the command, maps every outcome to an exit code."""
    err = _ErrConsole()
    previous = signal.signal(signal.SIGTERM, _raise_interrupted)
    try:
        cli.main(args=argv, prog_name="lab", standalone_mode=False)
        return EXIT_OK
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else EXIT_INFRA
    except click.exceptions.Abort:
        # click turns a KeyboardInterrupt (SIGINT) raised inside a command into Abort.
        err.print("lab: interrupted (SIGINT); what was started has been stopped")
        return EXIT_INFRA
    except click.ClickException as exc:
        err.print(f"lab: {exc.format_message()}", markup=False)
        return EXIT_USAGE
    except KeyboardInterrupt:
        err.print("lab: interrupted (SIGINT); what was started has been stopped")
        return EXIT_INFRA
    except LabError as exc:
        head = "invalid input" if isinstance(exc, ConfigError) else "error"
        err.print(f"lab: {head}:\n{exc}" if "\n" in str(exc) or isinstance(exc, ConfigError)
                  else f"lab: {head}: {exc}", markup=False)
        return exit_code_for(exc)
    finally:
        signal.signal(signal.SIGTERM, previous)


