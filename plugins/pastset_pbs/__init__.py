"""The PBS launcher (PBS Pro, OpenPBS, Torque): nodefile hosts inside a job, else ``qsub``.

Inside a job (``PBS_NODEFILE`` set) the hosts are the nodefile's lines (one per slot,
wrapping around when ``procs`` is larger). Workers start with ``pbsdsh -n INDEX`` when
``pbsdsh`` exists (they read the authkey from a 0600 file in the run's job directory, as
pbsdsh passes no input), else over ssh (the ``ssh`` setting, in BatchMode) with the authkey
on ssh's standard input. Outside a job, a ``qsub`` job built from ``[pastset.launcher.pbs]``
(queue, walltime, resources, extra) starts them the same way from inside; the run shows the
job's state while it waits and ``qdel``s it at teardown. Both ways the starters are
built once (:meth:`PbsLauncher.pbsdsh_argv`, :meth:`PbsLauncher.ssh_argv`); the
``prologue`` lines run on each node before its worker (and in the job script first).
"""
from __future__ import annotations

import re
import shutil
from typing import Any, List, Mapping, Optional, Sequence, Tuple

import pastset
from pastset.launch.batch import LOOP_HOST, BatchLauncher, JobFiles, JobState, read_host_file, spread, this_host_address
from pastset.launch.launcher import WorkerLaunch, run_command, text_option
from pastset.launch.remote import local_address_towards, shell_line, ssh_client_argv
from pastset.settings import Settings

#: job_state letters after which the job is over (Torque C, PBS Pro F with qstat -x)
FINISHED = {"C", "F", "X"}
LOCAL_NAMES = {"localhost", "127.0.0.1", "::1"}


class PbsLauncher(BatchLauncher):
    """``launcher = "pbs"``: pbsdsh or ssh over PBS_NODEFILE in a job, else a qsub job (qdel at the end)."""

    name = "pbs"
    summary = "PBS/Torque: pbsdsh (else ssh) over PBS_NODEFILE inside a job, else a qsub job (qdel at the end)"
    system = "PBS"
    submit_command = ("qsub",)
    cancel_command = ("qdel",)
    job_id_pattern = r"^\s*(\d+(?:\[\d*\])?(?:\.\S+)?)"  # "123.server"
    directive_prefix = "#PBS"
    allocation_variables = ("PBS_NODEFILE", "PBS_JOBID")
    option_specs = (text_option("queue", "qsub -q"), text_option("walltime", "qsub -l walltime="),
                    text_option("resources", "qsub -l resources; {procs} becomes the worker count", "nodes={procs}"),
                    *BatchLauncher.option_specs)

    @classmethod
    def allocated_slots(cls, environ: Mapping[str, str]) -> Optional[Tuple[int, str]]:
        path = environ.get("PBS_NODEFILE")
        if not path:
            return None
        try:
            slots = len(read_host_file(path))
        except pastset.LaunchError:
            return None
        return slots, f"{slots} slots in PBS_NODEFILE"

    def job_name(self, launch: WorkerLaunch) -> str:
        # Torque allows 15 characters: "ps" + time + pid of the run id
        return "ps" + launch.run_id.split("-", 1)[-1]

    def header_options(self, launch: WorkerLaunch, files: JobFiles) -> List[str]:
        options = [f"-N {self.job_name(launch)}", f"-o {files.output}", "-j oe"]
        resources = self.options["resources"].replace("{procs}", str(launch.count))
        if resources:
            options.append(f"-l {resources}")
        walltime = self.options["walltime"]
        if walltime:
            options.append(f"-l walltime={walltime}")
        queue = self.options["queue"]
        if queue:
            options.append(f"-q {queue}")
        return options + self.extra

    def ssh_base(self) -> List[str]:
        """The ``ssh`` setting made unattended: a password prompt is an error, not a hang."""
        return ssh_client_argv(self.settings.ssh_argv if self.settings is not None else ["ssh"])

    def pbsdsh_argv(self, worker: Sequence[str], index: Optional[int] = None) -> List[str]:
        """pbsdsh running ``worker`` on node ``index`` of the job, or on every slot (None)."""
        return ["pbsdsh", *([] if index is None else ["-n", str(index)]), "--", *worker]

    def ssh_argv(self, host: str, worker: Sequence[str]) -> List[str]:
        """ssh HOST 'WORKER': ssh hands the remote shell one line, so ``worker`` is quoted once."""
        return self.ssh_base() + [host, shell_line(worker)]

    def job_command(self, launch: WorkerLaunch, files: JobFiles) -> str:
        worker = self.worker_command(launch, key_file=files.authkey)
        ssh = shell_line(self.ssh_argv(LOOP_HOST, worker), raw={LOOP_HOST})
        return ("if command -v pbsdsh >/dev/null 2>&1; then "
                f"{shell_line(self.pbsdsh_argv(worker))}; "
                f'else while read host; do {ssh} </dev/null & done < "$PBS_NODEFILE"; wait; fi')

    def hosts(self) -> List[str]:
        """One entry per slot of the job we run in (PBS_NODEFILE)."""
        path = self.environ.get("PBS_NODEFILE")
        if not path:
            raise pastset.LaunchError("inside a PBS job (PBS_JOBID is set) but PBS_NODEFILE is not: "
                                      "cannot tell which nodes the job has")
        return read_host_file(path)

    def bind_host(self) -> str:
        """The local address that routes to the job's first other node (else this host's)."""
        if self.inside():
            for host in self.hosts():
                if host not in LOCAL_NAMES:
                    address = local_address_towards(host)
                    if address:
                        return address
        return this_host_address()

    def start_inside(self, launch: WorkerLaunch) -> None:
        hosts = self.hosts()
        if shutil.which("pbsdsh"):  # pbsdsh passes no input: the authkey is in a 0600 file
            worker = self.worker_command(launch, key_file=self.make_job_directory(launch).authkey)
            for i, host in enumerate(spread(hosts, launch.count)):
                self.start_child(f"pbsdsh on {host} (worker {i + 1})", self.pbsdsh_argv(worker, i % len(hosts)))
            return
        worker = self.worker_command(launch, key_stdin=True)  # the authkey follows on ssh's stdin
        for i, host in enumerate(spread(hosts, launch.count)):
            self.start_child(f"ssh {host} (worker {i + 1})", self.ssh_argv(host, worker),
                             stdin_line=launch.authkey_line())

    def job_state(self, job_id: str) -> Optional[JobState]:
        done = run_command(["qstat", "-f", job_id], check=False, timeout=30)
        if done.returncode != 0:
            err = done.stderr.decode(errors="replace")
            if "Unknown Job" in err or "has finished" in err:
                return None
            raise pastset.LaunchError(f"qstat -f {job_id}: {err.strip()}")
        return parse_qstat_f(done.stdout.decode(errors="replace"))


def parse_qstat_f(text: str) -> Optional[JobState]:
    """A JobState from ``qstat -f JOBID`` output (``job_state = Q``, ``comment = ...``)."""
    match = re.search(r"^\s*job_state\s*=\s*(\S+)", text, re.MULTILINE)
    if not match:
        return None
    state = match.group(1)
    comment = re.search(r"^\s*comment\s*=\s*(.+)$", text, re.MULTILINE)
    names = {"Q": "queued", "R": "running", "H": "held", "W": "waiting", "E": "exiting", "B": "array running"}
    reason = comment.group(1).strip() if comment else names.get(state, "")
    return JobState(state, reason, finished=state in FINISHED)


@pastset.hookimpl
def pastset_register_launchers(register: Any) -> None:
    register(PbsLauncher)


@pastset.hookimpl
def pastset_configure(settings: Settings) -> None:
    PbsLauncher.configure_procs(settings)
