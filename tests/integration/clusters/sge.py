"""A one-node Son of Grid Engine (qmaster + execd, PE ``smp``), for the sge tests."""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from typing import Iterator, Mapping

from .base import Cluster, ClusterError, run_command, terminate, wait_for
from helpers import procs
from helpers.polling import wait_until

log = logging.getLogger(__name__)


_SGE_ROOT = "/var/lib/gridengine"
_SGE_CELL = "default"
_SGE_SPOOL = Path("/var/spool/gridengine")
_SGE_LOCK = "/run/lock/pastset-test-sge.lock"

_SGE_PE = """\
pe_name            smp
slots              999
user_lists         NONE
xuser_lists        NONE
start_proc_args    NONE
stop_proc_args     NONE
allocation_rule    $round_robin
control_slaves     TRUE
job_is_first_task  FALSE
urgency_slots      min
accounting_summary FALSE
qsort_args         NONE
"""

_SGE_QUEUE = """\
qname                 all.q
hostlist              {host}
seq_no                0
load_thresholds       NONE
suspend_thresholds    NONE
nsuspend              1
suspend_interval      00:05:00
priority              0
min_cpu_interval      00:05:00
processors            UNDEFINED
qtype                 BATCH INTERACTIVE
ckpt_list             NONE
pe_list               smp
rerun                 FALSE
slots                 8
tmpdir                /tmp
shell                 /bin/sh
prolog                NONE
epilog                NONE
shell_start_mode      posix_compliant
starter_method        NONE
suspend_method        NONE
resume_method         NONE
terminate_method      NONE
notify                00:00:60
owner_list            NONE
user_lists            NONE
xuser_lists           NONE
subordinate_list      NONE
complex_values        NONE
projects              NONE
xprojects             NONE
calendar              NONE
initial_state         default
s_rt                  INFINITY
h_rt                  INFINITY
s_cpu                 INFINITY
h_cpu                 INFINITY
s_fsize               INFINITY
h_fsize               INFINITY
s_data                INFINITY
h_data                INFINITY
s_stack               INFINITY
h_stack               INFINITY
s_core                INFINITY
h_core                INFINITY
s_rss                 INFINITY
h_rss                 INFINITY
s_vmem                INFINITY
h_vmem                INFINITY
"""


class SgeCluster(Cluster):
    """A one-node Son of Grid Engine (Debian's gridengine-* packages): qmaster + execd.

    Grid Engine's paths (SGE_ROOT=/var/lib/gridengine, spool under /var/spool/gridengine) and
    ports (6444/6445 from /etc/services) are fixed, so there is one per machine: a lock file
    serialises test sessions, a qmaster/execd still running from an earlier (crashed) session is
    reused, and ``stop()`` always stops both daemons (by the PID files they write) so the
    machine is left clean.  Configuration (root may run jobs, a 1-second scheduler, parallel
    environment ``smp`` with ``control_slaves TRUE`` for ``qrsh -inherit``, queue ``all.q``
    on this host) is re-applied each time (idempotent).
    """

    BINARIES = ("/usr/sbin/sge_qmaster", "/usr/sbin/sge_execd", "qconf", "qstat", "qsub",
                "qrsh", "qdel")

    def __init__(self, lock_timeout: float = 300) -> None:
        self.hostname = socket.gethostname()
        bindir = os.path.dirname(shutil.which("qsub") or "/usr/bin/qsub")
        path = os.environ.get("PATH", "")
        if bindir not in path.split(os.pathsep):
            path = os.pathsep.join([bindir, path]) if path else bindir
        self.env: dict[str, str] = {"SGE_ROOT": _SGE_ROOT, "SGE_CELL": _SGE_CELL, "PATH": path}
        self.qmaster_pid_file = _SGE_SPOOL / "qmaster" / "qmaster.pid"
        self.reused = False
        self._lock_timeout = lock_timeout
        self._lock_fd: int | None = None
        self._workdir: tempfile.TemporaryDirectory[str] | None = None
        self._started = False

    @staticmethod
    def execd_pid_files() -> list[Path]:
        """PID files of execds.  The spool directory is named after the name the execd's
        address resolves to (e.g. ``localhost``), not necessarily after the hostname."""
        return sorted((_SGE_SPOOL / "execd").glob("*/execd.pid"))

    @property
    def logs(self) -> list[Path]:
        return [_SGE_SPOOL / "qmaster" / "messages",
                *sorted((_SGE_SPOOL / "execd").glob("*/messages"))]

    def command_env(self) -> dict[str, str]:
        """os.environ plus ``env``: the environment to run qsub/qstat/qconf with."""
        return {**os.environ, **self.env}

    def _q(self, *argv: str, timeout: float = 30, check: bool = True,
           cwd: str | None = None) -> subprocess.CompletedProcess[str]:
        return run_command(argv, env=self.command_env(), timeout=timeout, check=check, cwd=cwd)

    def queue(self) -> list[str]:
        """Ids of all users' jobs known to qstat (pending, running, being deleted)."""
        out = self._q("qstat", "-u", "*", timeout=15).stdout
        ids = []
        for line in out.splitlines():
            fields = line.split()
            if fields and fields[0].isdigit():
                ids.append(fields[0])
        return ids

    def _start(self) -> None:
        self._lock()
        self._workdir = tempfile.TemporaryDirectory(prefix="pastset-sge-")
        w = Path(self._workdir.name)
        host = self.hostname
        try:
            socket.gethostbyname(host)
        except OSError:
            raise ClusterError(f"hostname {host!r} does not resolve; Grid Engine needs it") from None
        common = Path(_SGE_ROOT) / _SGE_CELL / "common"
        if not (common / "bootstrap").exists():
            raise ClusterError(f"{common}/bootstrap missing: the gridengine-master postinst did "
                               "not initialise the cell (see .ci/system-packages.sh)")
        # 127.0.0.1 reverse-resolves to the first name on its /etc/hosts line (e.g. localhost),
        # while clients announce themselves by hostname: commlib then denies access unless all
        # those names are aliases of one host.
        aliases = []
        with contextlib.suppress(OSError):
            for line in Path("/etc/hosts").read_text().splitlines():
                fields = line.split("#", 1)[0].split()
                if fields and fields[0].startswith("127."):
                    aliases += [n for n in fields[1:] if n != host and n not in aliases]
        self._write_sge_file(common / "host_aliases", " ".join([host, *aliases]) + "\n")
        self._write_sge_file(common / "act_qmaster", host + "\n")

        if self._qmaster_answers():
            self.reused = True
            log.info("reusing the running sge_qmaster")
        else:
            self._q("/usr/sbin/sge_qmaster", timeout=30)  # daemonizes, writes its PID file
        wait_for(self._qmaster_answers, timeout=30, what="sge_qmaster to answer qstat",
                  logs=self.logs, interval=0.5)

        # root may run jobs (default min_uid/min_gid 1000); scheduler runs every second
        conf = self._q("qconf", "-sconf", "global").stdout
        (w / "global").write_text(_replace_keys(conf, {"min_uid": "0", "min_gid": "0"}))
        self._q("qconf", "-Mconf", "global", cwd=str(w))   # file name must be the config name
        sched = self._q("qconf", "-ssconf").stdout
        (w / "sched.conf").write_text(_replace_keys(sched, {
            "schedule_interval": "0:0:1", "flush_submit_sec": "1", "flush_finish_sec": "1"}))
        self._q("qconf", "-Msconf", str(w / "sched.conf"))
        self._q("qconf", "-as", host, check=False)          # submit host (may already be one)
        (w / "pe.conf").write_text(_SGE_PE)
        if self._q("qconf", "-Ap", str(w / "pe.conf"), check=False).returncode != 0:
            self._q("qconf", "-Mp", str(w / "pe.conf"))
        (w / "all.q.conf").write_text(_SGE_QUEUE.format(host=host))
        if self._q("qconf", "-Aq", str(w / "all.q.conf"), check=False).returncode != 0:
            self._q("qconf", "-Mq", str(w / "all.q.conf"))

        # execd caches the global config: (re)start it after min_uid changed
        if not any(self._pid_alive(f) for f in self.execd_pid_files()):
            self._q("/usr/sbin/sge_execd", timeout=30)
        wait_for(self._queue_instance_up, timeout=60, what=f"queue instance all.q@{host}",
                  logs=self.logs, interval=0.5)

    def _lock(self) -> None:
        """Hold an exclusive lock for the session: Grid Engine is one per machine."""
        fd = os.open(_SGE_LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        def locked() -> bool:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
            return True

        if not wait_until(locked, self._lock_timeout, 0.5):
            os.close(fd)
            raise ClusterError(f"{_SGE_LOCK} held by another test session for {self._lock_timeout} s")
        self._lock_fd = fd

    @staticmethod
    def _write_sge_file(path: Path, text: str) -> None:
        path.write_text(text)
        with contextlib.suppress(KeyError, OSError):
            shutil.chown(path, "sgeadmin", "sgeadmin")

    def _qmaster_answers(self) -> bool:
        try:
            return self._q("qstat", timeout=5, check=False).returncode == 0
        except ClusterError:
            return False

    def _queue_instance_up(self) -> bool:
        # qstat -f line: "all.q@vm  BIP  0/0/8  0.10  lx-amd64  [states]"; load "-NA-" until
        # execd reported, states (a, u, E ...) while not usable
        out = self._q("qstat", "-f", "-q", "all.q", timeout=10, check=False).stdout
        for line in out.splitlines():
            fields = line.split()
            if fields and fields[0].startswith("all.q@"):
                return len(fields) == 5 and fields[3] != "-NA-"   # no state column
        return False

    @staticmethod
    def _read_pid(path: Path) -> int | None:
        try:
            return int(path.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def _pid_alive(self, path: Path) -> bool:
        pid = self._read_pid(path)
        return pid is not None and procs.alive(pid)

    def stop(self) -> None:
        """Delete every job, stop execd and qmaster by their PID files, release the lock."""
        try:
            if self._lock_fd is not None and self._qmaster_answers():
                with contextlib.suppress(ClusterError):
                    jobs = self.queue()
                    if jobs:
                        self._q("qdel", "-f", *jobs, timeout=15, check=False)
                        wait_for(lambda: not self.queue(), timeout=20,
                                  what=f"jobs {jobs} to leave the queue", interval=0.5)
            if self._lock_fd is not None:
                # The daemons' own controlled shutdown (qconf -ke / -km) keeps the BerkeleyDB
                # spool consistent; sge_qmaster needs ~9 s for it (its threads stop one after
                # the other on 1-second timers).  Signals are the fallback for a daemon that
                # no longer answers.
                pids = [self._read_pid(f) for f in [*self.execd_pid_files(),
                                                     self.qmaster_pid_file]]
                live = [p for p in pids if p is not None and procs.alive(p)]
                if live and self._qmaster_answers():
                    with contextlib.suppress(ClusterError):
                        self._q("qconf", "-ke", "all", timeout=10, check=False)
                        self._q("qconf", "-km", timeout=10, check=False)
                    wait_until(lambda: not any(procs.alive(p) for p in live), 20, 0.1)
                terminate([p for p in live if procs.alive(p)], grace=15)
        finally:
            if self._workdir is not None:
                self._workdir.cleanup()
                self._workdir = None
            if self._lock_fd is not None:
                os.close(self._lock_fd)   # releases the flock
                self._lock_fd = None


def _replace_keys(config: str, values: Mapping[str, str]) -> str:
    """Set ``key value`` lines of a Grid Engine config dump."""
    out = []
    for line in config.splitlines():
        key = line.split(None, 1)[0] if line.strip() else ""
        out.append(f"{key} {values[key]}" if key in values else line)
    return "\n".join(out) + "\n"


@contextlib.contextmanager
def start_sge_cluster() -> Iterator[SgeCluster]:
    """Context manager: a started :class:`SgeCluster`, stopped (daemons killed) on exit."""
    with SgeCluster() as cluster:
        yield cluster
