"""Shared pieces for batch-system launchers (SLURM, Grid Engine, PBS, and third-party ones).

A batch launcher answers two questions, kept apart as in Parsl: *how to get nodes*
(submit a job with ``sbatch``/``qsub``, or find the allocation we already run in) and
*how to start processes on them* (``srun``, ``qrsh -inherit``, ``pbsdsh``, ssh over a
nodefile). :class:`BatchLauncher` does the first generically from a few class attributes
(submit/cancel commands, job-id pattern, directive prefix, the variable that shows an
allocation); a subclass supplies the header lines that differ, its *starter* (the argv
that runs workers on the nodes: ``srun ...``, ``qrsh -inherit HOST ...``), how to read a
job's state, and how to start workers inside an allocation.

The worker command itself has one source, :meth:`BatchLauncher.worker_command`; a
launcher's starter argv is built once, run directly inside an allocation and quoted with
:func:`shell_line` for the job script. The ``prologue`` option (``module load``,
``source venv/bin/activate``, ``export``) runs in the job script before the starter and,
through :func:`after_prologue`, on each node in the shell that then becomes the worker.

Job scripts are built by :func:`job_script`, a pure function of named slots (shebang,
header, prologue, command, epilogue), so they can be tested as strings.

Secrets: the authkey never appears in a job script, a command line or a log. A submitted
job's workers read it from a mode-0600 file in the run's private job directory (on a file
system the nodes share, ``workdir``), deleted when the run ends. Workers started from
inside an allocation get it through the environment of a local child (``srun``) or on
their standard input (``qrsh -inherit``, ssh).
"""
from __future__ import annotations

import abc
import logging
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any, ClassVar, Dict, List, Mapping, Optional, Sequence, Tuple

from ..errors import LaunchError
from ..observe.events import StatusLines
from ..settings.hostfile import read_host_file  # noqa: F401 (the batch plugins read node files with it)
from ..settings.specs import SettingSpec
from .launcher import Launcher, WorkerLaunch, lines_option, run_command, text_option
from .processes import kill_recorded, process_identity, start_child, stop_child
from .remote import PROLOGUE_SHELL, Starter, after_prologue, prologue_block, shell_line, with_environment

log = logging.getLogger(__name__)

#: default parent of the per-run job directories; home is shared by the nodes on most clusters
DEFAULT_WORKDIR = "~/.pastset/jobs"
#: seconds between two job-state queries while the run waits for workers
POLL_INTERVAL = 1.0
#: the host in a job script's ``while read host`` loop: pass it as a starter's host and to
#: ``shell_line(argv, raw={LOOP_HOST})`` so it stays a shell expansion in the script
LOOP_HOST = '"$host"'


# --------------------------------------------------------------------------- pure helpers


def job_script(*, command: str, shebang: str = "#!/bin/sh", header: Sequence[str] = (),
               prologue: Sequence[str] = (), epilogue: Sequence[str] = ()) -> str:
    """A job script from its named slots, one line per item, ending in a newline.

    :param command: the line that starts the workers (e.g. ``srun python -m pastset worker ...``).
    :param header: directive lines, already prefixed (see :func:`directives`).
    :param prologue: shell lines before the command; ``epilogue``: after it.
    """
    lines = [shebang, *header, *prologue, command, *epilogue]
    return "\n".join(lines) + "\n"


def directives(prefix: str, options: Sequence[str]) -> List[str]:
    """``["#SBATCH --ntasks=2", ...]``: each option after the directive prefix; blanks dropped."""
    return [f"{prefix} {option.strip()}" for option in options if option and option.strip()]


def option_text(options: Mapping[str, Any], key: str) -> str:
    """A text option of a launcher table as a string ("" when unset), for third-party
    launchers. A launcher's own ``self.options`` are checked against its ``option_specs``
    already, so this only reads."""
    value = options.get(key)
    return "" if value is None else str(value).strip()


def spread(hosts: Sequence[str], count: int) -> List[str]:
    """``count`` hosts taken in order from ``hosts``, wrapping around when there are too few."""
    return [hosts[i % len(hosts)] for i in range(count)]


def this_host_address() -> str:
    """An address of this host other nodes can use: what its name resolves to, else all."""
    try:
        return socket.gethostbyname(socket.gethostname())
    except OSError:
        return "0.0.0.0"


@dataclass(frozen=True)
class JobState:
    """A job's state as its batch system reports it."""

    state: str  #: the system's word: PENDING, RUNNING, qw, r, Q ...
    reason: str = ""  #: why it waits or ended, when the system says
    finished: bool = False  #: the job has ended (its workers are gone)
    hopeless: bool = False  #: it will never start or run (error state, impossible request)

    def describe(self) -> str:
        return f"{self.state} ({self.reason})" if self.reason else self.state


@dataclass(frozen=True)
class JobFiles:
    """Where a submitted job's files live (a private directory on the shared file system)."""

    directory: str
    script: str
    authkey: str
    output: str


# --------------------------------------------------------------------------- the base class


class BatchLauncher(Launcher):
    """Base of launchers for batch systems: submit, watch and cancel a job, or use the
    allocation the run is in. Subclasses set the class attributes and implement
    :meth:`header_options`, :meth:`job_command`, :meth:`job_state` and :meth:`start_inside`,
    building both commands from :meth:`worker_command` and one starter-argv method.
    """

    #: the batch system's name in messages ("SLURM")
    system: ClassVar[str] = ""
    #: submit command; the script path is appended
    submit_command: ClassVar[Sequence[str]] = ()
    #: cancel command; the job id is appended
    cancel_command: ClassVar[Sequence[str]] = ()
    #: pattern whose first group is the job id in the submit command's output
    job_id_pattern: ClassVar[str] = r"^\s*(\d+)"
    #: job-script directive prefix ("#SBATCH")
    directive_prefix: ClassVar[str] = ""
    #: environment variables that show we run inside an allocation, first match wins
    allocation_variables: ClassVar[Sequence[str]] = ()
    #: the shell the job script runs under (bash when there is a prologue: see :meth:`script_shell`)
    shell: ClassVar[str] = "/bin/sh"

    remote = True
    auto_priority = 10
    option_specs: ClassVar[Tuple[SettingSpec, ...]] = (
        lines_option("extra", "extra job-script directive lines, e.g. [\"--mem=4G\"]"),
        text_option("workdir", "parent of the per-run job directories (shared with the nodes); "
                    "empty means " + DEFAULT_WORKDIR),
        lines_option("prologue", "shell lines run on each node before the worker starts "
                     "(module load ..., source venv/bin/activate)"))

    def __init__(self, settings: Any, options: Optional[Mapping[str, Any]] = None,
                 environ: Optional[Mapping[str, str]] = None):
        super().__init__(settings, options)
        self.environ: Dict[str, str] = dict(os.environ if environ is None else environ)
        self.extra: List[str] = list(self.options["extra"])
        self.prologue: List[str] = list(self.options["prologue"])
        self.job_id: Optional[str] = None
        self.files: Optional[JobFiles] = None
        self.children: List[Starter] = []
        self.last_state: Optional[JobState] = None
        self._last_poll = 0.0
        self._shown = ""

    # -- where we are -----------------------------------------------------------------
    @classmethod
    def allocation(cls, environ: Mapping[str, str]) -> Optional[Tuple[str, str]]:
        """``(variable, value)`` of the first allocation variable set (non-empty), else None."""
        for name in cls.allocation_variables:
            if environ.get(name):
                return name, environ[name]
        return None

    @classmethod
    def detect(cls, environ: Mapping[str, str], settings: Any) -> Optional[str]:
        found = cls.allocation(environ)
        if found is None:
            return None
        return f"{found[0]}={found[1]} is set: inside a {cls.system} allocation"

    @classmethod
    def allocated_slots(cls, environ: Mapping[str, str]) -> Optional[Tuple[int, str]]:
        """How many workers the allocation we run in holds, and what said so; None if unknown.

        Subclasses read their system's variable (SLURM_NTASKS, NSLOTS, the nodefile).
        """
        return None

    @classmethod
    def configure_procs(cls, settings: Any, environ: Optional[Mapping[str, str]] = None) -> None:
        """The ``pastset_configure`` hook of a batch plugin: inside an allocation, ``procs``
        defaults to the allocation's size, so ``salloc -n 8 pastset run app.py`` gets 8
        workers. A value from a config file, the environment or a flag still wins."""
        environ = os.environ if environ is None else environ
        if settings.source("procs") != "default" or settings.launcher not in ("auto", cls.name):
            return
        if environ.get("PSLAUNCHER", "auto") not in ("", "auto", cls.name) or cls.allocation(environ) is None:
            return
        found = cls.allocated_slots(environ)
        if found is not None and found[0] >= 1:
            settings.set("procs", found[0], f"plugin {cls.name} ({found[1]})")

    def inside(self) -> bool:
        """True when the run is inside an allocation of this system (start there, not submit)."""
        return self.allocation(self.environ) is not None

    def bind_host(self) -> str:
        return this_host_address()

    # -- what subclasses provide ------------------------------------------------------
    @abc.abstractmethod
    def header_options(self, launch: WorkerLaunch, files: JobFiles) -> List[str]:
        """Directive options (without the prefix) for a job of ``launch.count`` workers."""

    @abc.abstractmethod
    def job_command(self, launch: WorkerLaunch, files: JobFiles) -> str:
        """The script line that starts ``launch.count`` workers in the job; they read the
        authkey from ``files.authkey`` (``self.worker_command(launch, key_file=...)``)."""

    @abc.abstractmethod
    def job_state(self, job_id: str) -> Optional[JobState]:
        """The job's state, or None when the system no longer knows it."""

    @abc.abstractmethod
    def start_inside(self, launch: WorkerLaunch) -> None:
        """Start the workers on the nodes of the allocation we run in."""

    # -- job scripts ------------------------------------------------------------------
    def job_name(self, launch: WorkerLaunch) -> str:
        return f"pastset-{launch.run_id}"

    def worker_command(self, launch: WorkerLaunch, *, key_file: Optional[str] = None,
                       key_stdin: bool = False) -> List[str]:
        """The argv that starts one worker on a node, the one source every starter wraps.

        ``env PYTHONPATH=... [bash -c PROLOGUE] PYTHON -m pastset worker ...``: the run's
        non-secret environment on the command itself (qrsh, pbsdsh and ssh do not carry
        ours), then the prologue, then the worker. The authkey comes from ``key_file`` (a
        submitted job), from stdin (``key_stdin``: qrsh, ssh) or, with neither, from the
        environment of the local starter (srun propagates it).
        """
        # clusters share their software tree: empty `python` means this interpreter on the nodes too
        python = self.settings.python_argv() if self.settings is not None else None
        argv = launch.worker_argv(python, authkey_stdin=key_stdin)
        if key_file:
            argv += ["--authkey-file", key_file]
        return with_environment(after_prologue(argv, self.prologue), launch.extra_env)

    def script_shell(self) -> str:
        """The job script's shell: :data:`~pastset.launch.remote.PROLOGUE_SHELL` when there is a
        prologue (its lines are written for bash, as on the nodes), else :attr:`shell`."""
        return f"/bin/{PROLOGUE_SHELL}" if self.prologue else self.shell

    def script_text(self, launch: WorkerLaunch, files: JobFiles) -> str:
        """The whole job script for ``launch`` (pure given the options; holds no secret).

        The prologue runs here too, before the starter, so a starter or module the job
        needs (``module load slurm``) is found; each node then runs it again before its worker.
        """
        header = directives(self.directive_prefix, self.header_options(launch, files))
        prologue = [f"# pastset run {launch.run_id}: {launch.count} worker(s) for "
                    f"{launch.address[0]}:{launch.address[1]}",
                    f"cd {shlex.quote(launch.bin_dir)} || exit 1", *prologue_block(self.prologue)]
        # once the workers are gone the key is of no use: remove it even if the runner was killed
        epilogue = [f"rm -f {shlex.quote(files.authkey)}"]
        return job_script(shebang=f"#!{self.script_shell()}", header=header, prologue=prologue,
                          command=self.job_command(launch, files), epilogue=epilogue)

    def job_files(self, run_id: str) -> JobFiles:
        workdir = os.path.expanduser(self.options["workdir"] or DEFAULT_WORKDIR)
        directory = os.path.join(os.path.abspath(workdir), run_id)
        return JobFiles(directory, os.path.join(directory, "job.sh"), os.path.join(directory, "authkey"),
                        os.path.join(directory, "job.out"))

    # -- start ------------------------------------------------------------------------
    def start(self, launch: WorkerLaunch) -> None:
        if self.inside():
            self.start_inside(launch)
        else:
            self.submit(launch)

    def make_job_directory(self, launch: WorkerLaunch) -> JobFiles:
        """Create the run's private job directory (0700) with the authkey file (0600) in it;
        it is deleted by :meth:`stop`."""
        files = self.job_files(launch.run_id)
        os.makedirs(os.path.dirname(files.directory), mode=0o700, exist_ok=True)
        try:
            os.mkdir(files.directory, 0o700)
        except FileExistsError:
            raise LaunchError(f"job directory {files.directory} already exists") from None
        self.files = files
        fd = os.open(files.authkey, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(launch.authkey_line())
        return files

    def submit(self, launch: WorkerLaunch) -> None:
        """Write the job's private directory (script, 0600 authkey file) and submit it."""
        files = self.make_job_directory(launch)
        with open(files.script, "w") as f:
            f.write(self.script_text(launch, files))
        os.chmod(files.script, 0o700)
        try:
            done = run_command(list(self.submit_command) + [files.script], timeout=60)
        except LaunchError as exc:
            raise LaunchError(f"the {self.system} job for the workers was rejected: {exc}") from None
        out = done.stdout.decode(errors="replace")
        match = re.search(self.job_id_pattern, out, re.MULTILINE)
        if not match:
            raise LaunchError(f"{self.submit_command[0]} printed no job id: {out.strip()!r}")
        self.job_id = match.group(1)
        self._say("job-submitted", {"system": self.system, "job": self.job_id, "name": self.job_name(launch),
                                    "workers": launch.count})

    def start_child(self, label: str, argv: Sequence[str], *, env: Optional[Mapping[str, str]] = None,
                    stdin_line: Optional[bytes] = None) -> None:
        """Start a starter process (srun/qrsh/pbsdsh/ssh) here; with ``stdin_line`` it is
        written to its standard input (the authkey for ``--authkey-stdin``), which then stays
        open: a worker started with ``--authkey-stdin`` stops when it reaches EOF, so the
        pipe doubles as a dead-man's switch between this runner and the remote worker."""
        try:
            proc = start_child(argv, env=env, stdin=subprocess.PIPE if stdin_line else subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        except OSError as exc:
            raise LaunchError(f"cannot start {argv[0]!r} for {label}: {exc.strerror}") from None
        starter = Starter(label, proc)
        self.children.append(starter)
        if stdin_line:
            starter.write_line(stdin_line)

    # -- watching ---------------------------------------------------------------------
    def poll(self) -> Optional[JobState]:
        """The submitted job's state, asked at most once per :data:`POLL_INTERVAL`; every
        change is shown to the user."""
        if self.job_id is None:
            return None
        now = time.monotonic()
        if self.last_state is not None and now - self._last_poll < POLL_INTERVAL:
            return self.last_state
        self._last_poll = now
        try:
            state = self.job_state(self.job_id)
        except LaunchError as exc:
            log.debug("cannot read the state of job %s: %s", self.job_id, exc)
            return self.last_state
        if state is None:
            state = JobState("gone", "no longer in the queue", finished=True)
        self.last_state = state
        text = f"{self.system} job {self.job_id} {state.describe()}"
        if text != self._shown:
            self._shown = text
            self._say("job-state", {"system": self.system, "job": self.job_id, "state": state.describe()})
        return state

    def problems(self) -> List[str]:
        found = []
        for child in self.children:
            code = child.proc.poll()
            if code is not None and code != 0:
                lines = child.stderr_lines(0.5)
                found.append(f"{child.label} exited with code {code}"
                             + (":\n    " + "\n    ".join(lines) if lines else " (no error output)"))
        state = self.poll()
        if state is not None and (state.finished or state.hopeless):
            what = "ended" if state.finished else "cannot start"
            found.append(f"{self.system} job {self.job_id} {what} ({state.describe()}) before its "
                         f"workers registered" + self._output_tail())
        return found

    def _output_tail(self) -> str:
        if self.files is None:
            return ""
        try:
            with open(self.files.output, errors="replace") as f:
                lines = f.read().splitlines()[-15:]
        except OSError:
            return ""
        return (f"; job output ({self.files.output}):\n    " + "\n    ".join(lines)) if lines else ""

    def pending(self) -> List[str]:
        out = [f"{c.label} (pid {c.proc.pid})" for c in self.children if c.proc.poll() is None]
        if self.job_id is not None:
            state = self.last_state
            out.append(f"{self.system} job {self.job_id}" + (f" {state.describe()}" if state else ""))
        return out

    # -- stop -------------------------------------------------------------------------
    def stop(self, grace: float = 2.0) -> None:
        for child in self.children:
            child.close_stdin()  # EOF: a worker on --authkey-stdin leaves by itself
            if child.proc.poll() is None:
                child.proc.terminate()
        for child in self.children:
            stop_child(child.proc, grace)
        if self.job_id is not None:
            self.cancel(self.job_id, wait=max(grace, 5.0))
        if self.files is not None:
            shutil.rmtree(self.files.directory, ignore_errors=True)

    def cancel(self, job_id: str, wait: float = 5.0) -> None:
        """Cancel the job unless it has ended; wait (bounded) until the queue lets it go."""
        state = self._state_quietly(job_id)
        if state is None or state.finished:
            return
        done = run_command(list(self.cancel_command) + [job_id], check=False, timeout=30)
        if done.returncode != 0:
            log.warning("%s %s: %s", self.cancel_command[0], job_id, done.stderr.decode(errors="replace").strip())
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            state = self._state_quietly(job_id)
            if state is None or state.finished:
                return
            time.sleep(0.25)
        log.warning("%s job %s still listed %g s after cancelling it", self.system, job_id, wait)

    def _state_quietly(self, job_id: str) -> Optional[JobState]:
        try:
            return self.job_state(job_id)
        except LaunchError:
            return None

    def record(self) -> Dict[str, Any]:
        return {"system": self.system, "jobs": [self.job_id] if self.job_id else [],
                "children": [process_identity(c.proc.pid) for c in self.children],
                "job_directory": self.files.directory if self.files else None}

    @classmethod
    def clean(cls, record: Mapping[str, Any]) -> List[str]:
        done = []
        for identity in record.get("children", []):
            if kill_recorded(identity):
                done.append(f"killed {cls.name} starter pid {identity['pid']}")
        for job_id in record.get("jobs", []):
            result = run_command(list(cls.cancel_command) + [str(job_id)], check=False, timeout=30)
            done.append(f"{shell_line(list(cls.cancel_command) + [str(job_id)])}: "
                        + ("done" if result.returncode == 0 else
                           result.stderr.decode(errors="replace").strip() or f"exit code {result.returncode}"))
        directory = record.get("job_directory")
        if directory and os.path.isdir(directory):
            shutil.rmtree(directory, ignore_errors=True)
            done.append(f"removed {directory}")
        return done

    # -- helpers ----------------------------------------------------------------------
    def _say(self, event: str, facts: Dict[str, Any]) -> None:
        """A status line about the job, once on stderr and in the log."""
        StatusLines(_write_stderr, log)(event, facts, logging.INFO)


def _write_stderr(line: str) -> None:
    sys.stderr.write(line + "\n")
    sys.stderr.flush()
