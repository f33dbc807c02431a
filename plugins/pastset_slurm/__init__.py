"""The SLURM launcher: ``srun`` inside an allocation, else an ``sbatch`` job for the workers.

Inside an allocation (``SLURM_JOB_ID`` set: ``salloc``, or a runner started by ``sbatch``)
one ``srun --ntasks=procs`` starts every worker on the allocated nodes; the authkey goes
to them through srun's environment propagation (the environment of our local srun child,
never its command line). Outside one, the workers are submitted as a job built from
``[pastset.launcher.slurm]`` (partition, time, account, extra directives) whose own
``srun`` starts them; they read the authkey from a 0600 file in the run's job directory.
The run shows the job's state while it waits ("SLURM job 123 PENDING (Resources)") and
cancels it with ``scancel`` at teardown. Both ways the workers start from one
:meth:`SlurmLauncher.srun_argv`; the ``prologue`` lines run in each srun task before its
worker (and in the job script before srun). If the runner is killed outright, the workers lose
the server and exit, which ends the job script and so the job.
"""
from __future__ import annotations

from typing import Any, List, Mapping, Optional, Sequence, Tuple

import pastset
from pastset.launch.batch import BatchLauncher, JobFiles, JobState, shell_line
from pastset.launch.launcher import WorkerLaunch, run_command, text_option
from pastset.settings import Settings

#: job states after which the job's workers are gone (squeue --states=all)
FINISHED = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "PREEMPTED", "BOOT_FAIL",
            "DEADLINE", "OUT_OF_MEMORY", "SPECIAL_EXIT", "REVOKED"}
#: pending reasons that will not resolve by waiting
HOPELESS_REASONS = {"BadConstraints", "PartitionConfig", "InvalidAccount", "InvalidQOS", "AccountNotAllowed",
                    "QOSNotAllowed", "DependencyNeverSatisfied", "PartitionDown", "PartitionInactive"}


class SlurmLauncher(BatchLauncher):
    """``launcher = "slurm"``: srun in an allocation, else an sbatch job (cancelled at the end)."""

    name = "slurm"
    summary = "SLURM: srun inside an allocation, else an sbatch job (scancel at the end)"
    system = "SLURM"
    submit_command = ("sbatch", "--parsable")
    cancel_command = ("scancel",)
    job_id_pattern = r"^\s*(\d+)"  # --parsable: "123" or "123;cluster"
    directive_prefix = "#SBATCH"
    allocation_variables = ("SLURM_JOB_ID", "SLURM_JOBID")
    option_specs = (text_option("partition", "sbatch --partition"), text_option("time", "sbatch --time (time limit)"),
                    text_option("account", "sbatch --account"), *BatchLauncher.option_specs)

    @classmethod
    def allocated_slots(cls, environ: Mapping[str, str]) -> Optional[Tuple[int, str]]:
        for variable in ("SLURM_NTASKS", "SLURM_NPROCS", "SLURM_JOB_NUM_NODES"):
            value = environ.get(variable, "")
            if value.isdigit():
                return int(value), f"{variable}={value}"
        return None

    def header_options(self, launch: WorkerLaunch, files: JobFiles) -> List[str]:
        options = [f"--job-name={self.job_name(launch)}", f"--ntasks={launch.count}",
                   f"--output={files.output}"]
        for key in ("partition", "time", "account"):
            value = self.options[key]
            if value:
                options.append(f"--{key}={value}")
        return options + self.extra

    def srun_argv(self, launch: WorkerLaunch, worker: Sequence[str]) -> List[str]:
        """srun starting ``launch.count`` copies of ``worker`` (see :meth:`worker_command`)."""
        return ["srun", f"--ntasks={launch.count}", f"--job-name={self.job_name(launch)}",
                "--kill-on-bad-exit=0", *worker]

    def job_command(self, launch: WorkerLaunch, files: JobFiles) -> str:
        return shell_line(self.srun_argv(launch, self.worker_command(launch, key_file=files.authkey)))

    def start_inside(self, launch: WorkerLaunch) -> None:
        # the authkey is in srun's environment (ours, as a local child), which it propagates
        self.start_child(f"srun ({launch.count} workers in job {self.environ.get('SLURM_JOB_ID')})",
                         self.srun_argv(launch, self.worker_command(launch)), env=launch.worker_env(self.environ))

    def job_state(self, job_id: str) -> Optional[JobState]:
        done = run_command(["squeue", "-h", "--states=all", "-j", job_id, "-o", "%T|%r"], check=False, timeout=30)
        text = done.stdout.decode(errors="replace").strip()
        if done.returncode != 0 or not text:
            err = done.stderr.decode(errors="replace")
            if "Invalid job id" in err or done.returncode == 0:
                return None
            raise pastset.LaunchError(f"squeue -j {job_id}: {err.strip()}")
        return parse_squeue(text.splitlines()[0])


def parse_squeue(line: str) -> JobState:
    """A JobState from one ``squeue -o "%T|%r"`` line, e.g. ``PENDING|Resources``."""
    state, _, reason = line.partition("|")
    state, reason = state.strip(), reason.strip()
    if reason in ("None", "(null)"):
        reason = ""
    hopeless = state == "PENDING" and reason.split(",")[0] in HOPELESS_REASONS
    return JobState(state, reason, finished=state in FINISHED, hopeless=hopeless)


@pastset.hookimpl
def pastset_register_launchers(register: Any) -> None:
    register(SlurmLauncher)


@pastset.hookimpl
def pastset_configure(settings: Settings) -> None:
    SlurmLauncher.configure_procs(settings)
