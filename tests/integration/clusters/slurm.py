"""A one-node SLURM (munged + slurmctld + slurmd) with a private config, for the slurm tests."""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import subprocess
from pathlib import Path
from typing import Callable, Iterator

from .base import (
    Cluster,
    ClusterError,
    DaemonDied,
    free_tcp_port,
    logs_report,
    port_open,
    run_command,
    spawn_daemon,
    stop_popen,
    terminate,
    wait_for,
)
from helpers import procs


class SlurmCluster(Cluster):
    """A one-node SLURM cluster (munged + slurmctld + slurmd) with a private config.

    Everything lives under ``tmpdir``: munge key and socket, slurm.conf, state and spool
    directories, logs.  Ports are free ones picked at start, so sessions do not collide.
    Commands (srun, sbatch, squeue ...) find this cluster through ``env`` (SLURM_CONF); the
    munge socket is named in slurm.conf (AuthInfo), so no other variable is needed.
    """

    BINARIES = ("munged", "slurmctld", "slurmd", "srun", "sbatch", "squeue", "scancel", "sinfo")

    def __init__(self, tmpdir: str | os.PathLike[str]) -> None:
        self.dir = Path(tmpdir)
        self.conf_path = self.dir / "slurm.conf"
        self.hostname = socket.gethostname()
        self.env: dict[str, str] = {"SLURM_CONF": str(self.conf_path)}
        # Marker in the daemons' environment: slurmstepd processes (forked by slurmd, then
        # detached) inherit it, which is how stop() finds the ones that belong to this cluster.
        self._marker = f"PASTSET_TEST_SLURM={secrets.token_hex(8)}"
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._started = False

    @property
    def logs(self) -> list[Path]:
        return [self.dir / n for n in ("munged.log", "slurmctld.log", "slurmd.log")]

    def command_env(self) -> dict[str, str]:
        """os.environ plus ``env``: the environment to run slurm commands with."""
        return {**os.environ, **self.env}

    def queue(self) -> list[str]:
        """Ids of the jobs in squeue (pending, running, completing)."""
        out = run_command(["squeue", "-h", "-o", "%i"], env=self.command_env(), timeout=15).stdout
        return out.split()

    def _start(self) -> None:
        d = self.dir
        for sub in ("state", "spool"):
            (d / sub).mkdir(parents=True, exist_ok=True)
        key = d / "munge.key"
        key.write_bytes(secrets.token_bytes(1024))
        key.chmod(0o400)
        sock = d / "munge.sock"
        daemon_env = {**os.environ, **self.env}
        name, _, value = self._marker.partition("=")
        daemon_env[name] = value

        self._procs["munged"] = spawn_daemon(
            ["munged", "--foreground", "--force", "-S", str(sock), f"--key-file={key}",
             f"--log-file={d / 'munged.log'}", f"--pid-file={d / 'munged.pid'}",
             f"--seed-file={d / 'munged.seed'}"], d / "munged.log", daemon_env)
        self._wait_alive("munged", lambda: sock.exists(), "the munge socket")

        ctld_port = free_tcp_port()
        slurmd_port = free_tcp_port()
        while slurmd_port == ctld_port:
            slurmd_port = free_tcp_port()
        cpus = os.cpu_count() or 1
        self.conf_path.write_text(f"""\
ClusterName=pstest
SlurmctldHost={self.hostname}(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={sock}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
StateSaveLocation={d / 'state'}
SlurmdSpoolDir={d / 'spool'}
SlurmctldPidFile={d / 'slurmctld.pid'}
SlurmdPidFile={d / 'slurmd.pid'}
SlurmctldLogFile={d / 'slurmctld.log'}
SlurmdLogFile={d / 'slurmd.log'}
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
ReturnToService=2
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
KillWait=2
MinJobAge=2
NodeName={self.hostname} NodeAddr=127.0.0.1 CPUs={cpus} State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
""")
        # -D: stay in the foreground, so the PID we hold is the daemon's own
        self._procs["slurmctld"] = spawn_daemon(
            ["slurmctld", "-D", "-i", "-f", str(self.conf_path)], d / "slurmctld.out", daemon_env)
        self._wait_alive("slurmctld", lambda: port_open("127.0.0.1", ctld_port),
                         f"slurmctld on port {ctld_port}")
        self._procs["slurmd"] = spawn_daemon(
            ["slurmd", "-D", "-f", str(self.conf_path)], d / "slurmd.out", daemon_env)

        def node_idle() -> bool:
            out = run_command(["sinfo", "-h", "-o", "%T"], env=self.command_env(), timeout=10).stdout
            return out.strip().rstrip("*") == "idle"

        self._wait_alive("slurmd", node_idle, f"node {self.hostname} to be idle", timeout=30)

    def _wait_alive(self, name: str, ready: Callable[[], object], what: str,
                    timeout: float = 20) -> None:
        proc = self._procs[name]

        def check() -> object:
            if proc.poll() is not None:
                raise DaemonDied(f"{name} exited with {proc.returncode}\n"
                                   + logs_report([*self.logs, self.dir / f"{name}.out"]))
            return ready()

        wait_for(check, timeout=timeout, what=what,
                  logs=[*self.logs, self.dir / f"{name}.out"])

    def stop(self) -> None:
        """Cancel every job, then stop slurmd, slurmctld, stray slurmstepds, munged -- by PID."""
        if "slurmctld" in self._procs and self._procs["slurmctld"].poll() is None:
            with contextlib.suppress(ClusterError):
                jobs = self.queue()
                if jobs:
                    run_command(["scancel", *jobs], env=self.command_env(), timeout=15, check=False)
                    with contextlib.suppress(ClusterError):
                        wait_for(lambda: not self.queue(), timeout=15,
                                  what=f"jobs {jobs} to leave the queue")
        for name in ("slurmd", "slurmctld"):
            proc = self._procs.pop(name, None)
            if proc is not None:
                stop_popen(proc)
        strays = self._marked_processes()
        for pid in strays:
            strays.extend(q for q in procs.descendants(pid) if q not in strays)
        terminate(strays)
        proc = self._procs.pop("munged", None)
        if proc is not None:
            stop_popen(proc)

    def _marked_processes(self) -> list[int]:
        """PIDs whose environment carries this cluster's marker (slurmstepd and the like)."""
        name, _, value = self._marker.partition("=")
        return procs.pids_with_env(name, value)


@contextlib.contextmanager
def start_slurm_cluster(tmpdir: str | os.PathLike[str]) -> Iterator[SlurmCluster]:
    """Context manager: a started :class:`SlurmCluster`, torn down on exit."""
    with SlurmCluster(tmpdir) as cluster:
        yield cluster

