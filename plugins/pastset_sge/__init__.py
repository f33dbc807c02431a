"""The Grid Engine launcher: ``qrsh -inherit`` inside a parallel-environment job, else ``qsub -pe``.

Inside a PE job (``PE_HOSTFILE`` set) the hosts come from ``PE_HOSTFILE`` (one per slot,
wrapping around when ``procs`` is larger) and each worker starts with ``qrsh -inherit HOST``,
reading the authkey from its standard input. Outside one, a ``qsub -pe PE procs`` job built
from ``[pastset.launcher.sge]`` (pe, queue, extra) starts the workers the same way from
inside the job, reading the authkey from a 0600 file in the run's job directory; the run
shows the job's state while it waits and ``qdel``s it at teardown. Both ways each worker
starts from one :meth:`SgeLauncher.qrsh_argv`; the ``prologue`` lines run on the node
before the worker (and in the job script before the qrsh loop). If the runner is killed
outright, the workers lose the server and exit, which ends the job script and so the job.
"""
from __future__ import annotations

from typing import Any, List, Mapping, Optional, Sequence, Tuple

import pastset
from pastset.launch.batch import LOOP_HOST, BatchLauncher, JobFiles, JobState, read_host_file, shell_line, spread
from pastset.launch.launcher import WorkerLaunch, run_command, text_option
from pastset.settings import Settings

#: qstat state letters: pending (q), running (r), transferring (t), error (E), deleting (d) ...
ERROR_MARK = "E"


class SgeLauncher(BatchLauncher):
    """``launcher = "sge"``: qrsh -inherit in a PE job, else a qsub -pe job (qdel at the end)."""

    name = "sge"
    summary = "Grid Engine: qrsh -inherit inside a PE job (PE_HOSTFILE), else a qsub -pe job (qdel at the end)"
    system = "Grid Engine"
    submit_command = ("qsub", "-terse")
    cancel_command = ("qdel",)
    job_id_pattern = r"^\s*(\d+)"
    directive_prefix = "#$"
    allocation_variables = ("PE_HOSTFILE",)
    option_specs = (text_option("pe", "parallel environment (qsub -pe PE N)", "smp"), text_option("queue", "qsub -q"),
                    *BatchLauncher.option_specs)

    @classmethod
    def allocated_slots(cls, environ: Mapping[str, str]) -> Optional[Tuple[int, str]]:
        value = environ.get("NSLOTS", "")
        return (int(value), f"NSLOTS={value}") if value.isdigit() else None

    def header_options(self, launch: WorkerLaunch, files: JobFiles) -> List[str]:
        pe = self.options["pe"] or "smp"
        options = [f"-N {self.job_name(launch)}", f"-pe {pe} {launch.count}", f"-o {files.output}", "-j y",
                   f"-S {self.script_shell()}"]
        queue = self.options["queue"]
        if queue:
            options.append(f"-q {queue}")
        return options + self.extra

    def qrsh_argv(self, host: str, worker: Sequence[str], *, stdin: bool = True) -> List[str]:
        """qrsh -inherit running ``worker`` (see :meth:`worker_command`) on ``host``.

        Like ssh, qrsh joins its command words with spaces for a shell on the node, so
        ``worker`` goes as one line quoted once (a prologue's ``bash -c`` script has spaces).
        """
        return ["qrsh", "-inherit", *([] if stdin else ["-nostdin"]), host, shell_line(worker)]

    def job_command(self, launch: WorkerLaunch, files: JobFiles) -> str:
        # one qrsh -inherit per granted slot, read from the job's own PE_HOSTFILE
        qrsh = self.qrsh_argv(LOOP_HOST, self.worker_command(launch, key_file=files.authkey), stdin=False)
        return ('while read host slots rest; do i=0; while [ "$i" -lt "$slots" ]; do '
                f'{shell_line(qrsh, raw={LOOP_HOST})} & i=$((i+1)); done; '
                'done < "$PE_HOSTFILE"; wait')

    def hosts(self) -> List[str]:
        """One entry per slot of the PE job we run in."""
        return read_host_file(self.environ["PE_HOSTFILE"], slots_column=1)

    def start_inside(self, launch: WorkerLaunch) -> None:
        worker = self.worker_command(launch, key_stdin=True)  # the authkey follows on qrsh's stdin
        for i, host in enumerate(spread(self.hosts(), launch.count)):
            self.start_child(f"qrsh -inherit {host} (worker {i + 1})", self.qrsh_argv(host, worker),
                             stdin_line=launch.authkey_line())

    def job_state(self, job_id: str) -> Optional[JobState]:
        done = run_command(["qstat", "-u", "*"], timeout=30)
        return parse_qstat(done.stdout.decode(errors="replace"), job_id)


def parse_qstat(text: str, job_id: str) -> Optional[JobState]:
    """The state of ``job_id`` in ``qstat`` output (``qw``, ``r``, ``Eqw`` ...), None if absent."""
    for line in text.splitlines():
        fields = line.split()
        if len(fields) > 4 and fields[0] == job_id:
            state = fields[4]
            reason = {"qw": "pending", "hqw": "on hold", "r": "running", "t": "starting",
                      "Eqw": "error: see qstat -j " + job_id}.get(state, "")
            if "d" in state:
                reason = "being deleted"
            return JobState(state, reason, finished=False, hopeless=ERROR_MARK in state)
    return None


@pastset.hookimpl
def pastset_register_launchers(register: Any) -> None:
    register(SgeLauncher)


@pastset.hookimpl
def pastset_configure(settings: Settings) -> None:
    SgeLauncher.configure_procs(settings)
