"""Batch launchers as pure functions: job scripts, command lines, state parsing and detect().

Nothing here talks to a batch system; tests/integration/test_{slurm,sge,pbs}.py do.
"""
from __future__ import annotations

import shlex
import sys
from typing import List, Tuple

import pytest

from pastset.errors import LaunchError
from pastset.launch.batch import (
    LOOP_HOST,
    JobFiles,
    directives,
    job_script,
    option_text,
    read_host_file,
    spread,
    with_environment,
)
from pastset.launch.launcher import WorkerLaunch
from pastset.settings.load import Settings
from pastset_pbs import PbsLauncher, parse_qstat_f
from pastset_sge import SgeLauncher, parse_qstat
from pastset_slurm import SlurmLauncher, parse_squeue

AUTHKEY = bytes(range(32))
FILES = JobFiles("/shared/jobs/R1", "/shared/jobs/R1/job.sh", "/shared/jobs/R1/authkey", "/shared/jobs/R1/job.out")


def launch(count=3):
    return WorkerLaunch(count=count, run_id="20240101-120000-4242", address=("10.0.0.1", 5000), authkey=AUTHKEY,
                        bin_dir="/home/u/app", extra_env={"PYTHONPATH": "/opt/pastset"})


def make(cls, options=None, environ=None):
    return cls(Settings(), options or {}, environ=environ or {})


def assert_no_secret(text):
    assert AUTHKEY.hex() not in text


def script(launcher, workers: int, starter: str) -> Tuple[List[str], str]:
    """``launcher``'s job script for ``workers`` as lines (it holds no secret), and its line
    holding ``starter``: the one that starts the workers."""
    text = launcher.script_text(launch(workers), FILES)
    assert_no_secret(text)
    lines = text.splitlines()
    return lines, next(line for line in lines if starter in line)


# --------------------------------------------------------------------------- slots


def test_job_script_puts_the_slots_in_order():
    text = job_script(shebang="#!/bin/bash", header=["#X -a"], prologue=["cd /x"], command="run",
                      epilogue=["rm f"])
    assert text == "#!/bin/bash\n#X -a\ncd /x\nrun\nrm f\n"


def test_directives_prefix_each_option_and_drop_blanks():
    assert directives("#SBATCH", ["--ntasks=2", " ", "--time=1:00 "]) == ["#SBATCH --ntasks=2", "#SBATCH --time=1:00"]


def test_extra_must_be_strings():
    assert make(SlurmLauncher, {"extra": "--mem=1G"}).extra == ["--mem=1G"]
    assert make(SlurmLauncher, {"extra": ["-a", "-b"]}).extra == ["-a", "-b"]
    assert make(SlurmLauncher).extra == []
    with pytest.raises(LaunchError, match=r"\[pastset.launcher.slurm\].* extra: 3"):
        make(SlurmLauncher, {"extra": 3})


def test_text_options_arrive_checked_and_stripped():
    launcher = make(SlurmLauncher, {"partition": "  debug "})
    assert launcher.options["partition"] == "debug" and launcher.options["account"] == ""
    assert option_text(launcher.options, "partition") == "debug"  # the helper third-party launchers call
    with pytest.raises(LaunchError, match=r"partition: 3"):
        make(SlurmLauncher, {"partition": 3})


def test_unknown_table_key_is_named():
    with pytest.raises(LaunchError, match="unknown key.*partitoin.*allowed: account, extra, partition"):
        make(SlurmLauncher, {"partitoin": "x"})


def test_host_files_and_wrap_around(tmp_path):
    pe = tmp_path / "pe"
    pe.write_text("n1 2 all.q@n1 UNDEFINED\nn2 1 all.q@n2 UNDEFINED\n")
    assert read_host_file(str(pe), slots_column=1) == ["n1", "n1", "n2"]
    nodefile = tmp_path / "nodes"
    nodefile.write_text("a\na\n# comment\n\nb\n")
    assert read_host_file(str(nodefile)) == ["a", "a", "b"]
    assert spread(["a", "b"], 5) == ["a", "b", "a", "b", "a"]
    empty = tmp_path / "empty"
    empty.write_text("\n")
    with pytest.raises(LaunchError, match="lists no hosts"):
        read_host_file(str(empty))


def test_with_environment():
    assert with_environment(["p", "x"], {"A": "1"}) == ["env", "A=1", "p", "x"]
    assert with_environment(["p"], {}) == ["p"]


# --------------------------------------------------------------------------- SLURM


def test_sbatch_script():
    slurm = make(SlurmLauncher, {"partition": "debug", "time": "00:10:00", "account": "proj",
                                 "extra": ["--mem=1G"]})
    text = slurm.script_text(launch(), FILES)
    lines = text.splitlines()
    assert lines[0] == "#!/bin/sh"
    assert lines[1:8] == ["#SBATCH --job-name=pastset-20240101-120000-4242", "#SBATCH --ntasks=3",
                          "#SBATCH --output=/shared/jobs/R1/job.out", "#SBATCH --partition=debug",
                          "#SBATCH --time=00:10:00", "#SBATCH --account=proj", "#SBATCH --mem=1G"]
    assert "cd /home/u/app || exit 1" in lines
    command = [line for line in lines if line.startswith("srun ")]
    assert command == [f"srun --ntasks=3 --job-name=pastset-20240101-120000-4242 --kill-on-bad-exit=0 "
                       f"env PYTHONPATH=/opt/pastset {sys.executable} -m "
                       "pastset worker --address 10.0.0.1:5000 --run 20240101-120000-4242 --bin /home/u/app "
                       "--authkey-file /shared/jobs/R1/authkey"]
    assert lines[-1] == "rm -f /shared/jobs/R1/authkey"
    assert_no_secret(text)


def test_sbatch_script_leaves_out_unset_options():
    text = make(SlurmLauncher).script_text(launch(), FILES)
    assert "--partition" not in text and "--time" not in text and "--account" not in text


def test_srun_inside_an_allocation_keeps_the_key_in_the_environment_only():
    slurm = make(SlurmLauncher, environ={"SLURM_JOB_ID": "7"})
    argv = slurm.srun_argv(launch(2), slurm.worker_command(launch(2)))
    assert argv[:4] == ["srun", "--ntasks=2", "--job-name=pastset-20240101-120000-4242", "--kill-on-bad-exit=0"]
    assert_no_secret(" ".join(argv))
    assert launch().worker_env({})["PASTSET_AUTHKEY"] == AUTHKEY.hex()


@pytest.mark.parametrize("line, state, reason, finished, hopeless", [
    ("PENDING|Resources", "PENDING", "Resources", False, False),
    ("PENDING|BadConstraints", "PENDING", "BadConstraints", False, True),
    ("RUNNING|None", "RUNNING", "", False, False),
    ("FAILED|NonZeroExitCode", "FAILED", "NonZeroExitCode", True, False),
    ("CANCELLED|None", "CANCELLED", "", True, False),
])
def test_squeue_states(line, state, reason, finished, hopeless):
    got = parse_squeue(line)
    assert (got.state, got.reason, got.finished, got.hopeless) == (state, reason, finished, hopeless)
    assert got.describe() == (f"{state} ({reason})" if reason else state)


# --------------------------------------------------------------------------- Grid Engine


def test_qsub_pe_script():
    lines, command = script(make(SgeLauncher, {"pe": "mpi", "queue": "all.q", "extra": ["-l h_vmem=1G"]}), 4, "qrsh")
    assert lines[1:8] == ["#$ -N pastset-20240101-120000-4242", "#$ -pe mpi 4", "#$ -o /shared/jobs/R1/job.out",
                          "#$ -j y", "#$ -S /bin/sh", "#$ -q all.q", "#$ -l h_vmem=1G"]
    assert 'qrsh -inherit -nostdin "$host" \'env PYTHONPATH=/opt/pastset' in command
    assert "--authkey-file /shared/jobs/R1/authkey' &" in command
    assert command.endswith('done < "$PE_HOSTFILE"; wait')


def test_qsub_default_pe_is_smp():
    assert "#$ -pe smp 3" in make(SgeLauncher).script_text(launch(), FILES)


def test_qrsh_inherit_argv_reads_the_key_from_stdin(tmp_path):
    hostfile = tmp_path / "pe_hostfile"
    hostfile.write_text("nodeA 1 all.q@nodeA UNDEFINED\nnodeB 1 all.q@nodeB UNDEFINED\n")
    sge = make(SgeLauncher, environ={"PE_HOSTFILE": str(hostfile)})
    assert spread(sge.hosts(), 3) == ["nodeA", "nodeB", "nodeA"]
    argv = sge.qrsh_argv("nodeB", sge.worker_command(launch(), key_stdin=True))
    assert argv[:3] == ["qrsh", "-inherit", "nodeB"] and len(argv) == 4  # one line for the node's shell
    assert shlex.split(argv[3])[-1] == "--authkey-stdin"
    assert_no_secret(" ".join(argv))


QSTAT = """\
job-ID  prior   name       user         state submit/start at     queue                          slots ja-task-ID
-----------------------------------------------------------------------------------------------------------------
     12 0.55500 pastset-20 root         r     01/01/2024 12:00:00 all.q@vm                           2
     13 0.00000 pastset-20 root         qw    01/01/2024 12:00:01                                   20
     14 0.00000 pastset-20 root         Eqw   01/01/2024 12:00:01                                    2
"""


def test_qstat_states():
    assert parse_qstat(QSTAT, "12").describe() == "r (running)"
    assert parse_qstat(QSTAT, "13").describe() == "qw (pending)"
    assert parse_qstat(QSTAT, "14").hopeless
    assert parse_qstat(QSTAT, "99") is None


# --------------------------------------------------------------------------- PBS


def test_pbs_script():
    pbs = make(PbsLauncher, {"queue": "batch", "walltime": "00:30:00", "extra": ["-l mem=4gb"]})
    lines, command = script(pbs, 2, "pbsdsh")
    assert lines[1:8] == ["#PBS -N ps120000-4242", "#PBS -o /shared/jobs/R1/job.out", "#PBS -j oe",
                          "#PBS -l nodes=2", "#PBS -l walltime=00:30:00", "#PBS -q batch", "#PBS -l mem=4gb"]
    assert "then pbsdsh -- env PYTHONPATH=/opt/pastset" in command
    assert "ssh -o BatchMode=yes -o ConnectTimeout=10 \"$host\" '" in command
    assert '< "$PBS_NODEFILE"; wait; fi' in command


def test_pbs_resources_template():
    text = make(PbsLauncher, {"resources": "select={procs}:ncpus=1"}).script_text(launch(5), FILES)
    assert "#PBS -l select=5:ncpus=1" in text


def test_pbs_over_ssh_argv_reads_the_key_from_stdin(tmp_path):
    nodefile = tmp_path / "nodes"
    nodefile.write_text("n1\nn2\n")
    settings = Settings()
    settings.set("ssh", "ssh -p 2222", "test")
    pbs = PbsLauncher(settings, {}, environ={"PBS_NODEFILE": str(nodefile), "PBS_JOBID": "9.srv"})
    assert pbs.hosts() == ["n1", "n2"]
    argv = pbs.ssh_argv("n2", pbs.worker_command(launch(), key_stdin=True))
    # BatchMode first (ssh keeps the first value it sees), a ConnectTimeout since none was set
    assert argv[:8] == ["ssh", "-o", "BatchMode=yes", "-p", "2222", "-o", "ConnectTimeout=10", "n2"]
    assert argv[8].startswith(f"env PYTHONPATH=/opt/pastset {sys.executable} -m pastset worker")
    assert argv[8].endswith("--authkey-stdin")
    assert_no_secret(" ".join(argv))


def test_pbs_job_without_nodefile_is_a_clear_error():
    with pytest.raises(LaunchError, match="PBS_NODEFILE is not"):
        make(PbsLauncher, environ={"PBS_JOBID": "1"}).hosts()


def test_qstat_f_states():
    assert parse_qstat_f("Job Id: 1.srv\n    job_state = Q\n    comment = Not Running: Insufficient resources\n"
                         ).describe() == "Q (Not Running: Insufficient resources)"
    assert parse_qstat_f("    job_state = R\n").describe() == "R (running)"
    assert parse_qstat_f("    job_state = C\n").finished
    assert parse_qstat_f("nothing") is None


# --------------------------------------------------------------------------- auto


@pytest.mark.parametrize("cls, environ, expected", [
    (SlurmLauncher, {"SLURM_JOB_ID": "123"}, "SLURM_JOB_ID=123 is set: inside a SLURM allocation"),
    (SgeLauncher, {"PE_HOSTFILE": "/var/spool/pe"},
     "PE_HOSTFILE=/var/spool/pe is set: inside a Grid Engine allocation"),
    (PbsLauncher, {"PBS_JOBID": "5.srv"}, "PBS_JOBID=5.srv is set: inside a PBS allocation"),
    (PbsLauncher, {"PBS_NODEFILE": "/n", "PBS_JOBID": "5"}, "PBS_NODEFILE=/n is set: inside a PBS allocation"),
])
def test_detect_names_the_variable(cls, environ, expected):
    assert cls.detect(environ, Settings()) == expected
    assert cls.detect({"SLURM_JOB_ID": ""}, Settings()) is None  # empty counts as unset
    assert cls.detect({}, Settings()) is None


def test_auto_picks_the_allocation_it_is_in():
    from pastset.launch.plugins import launchers, make_plugin_manager
    from pastset.run.runner import choose_launcher

    registry = launchers(make_plugin_manager(autoload=False))
    info, why = choose_launcher(Settings(), registry, environ={"SLURM_JOB_ID": "42"})
    assert (info.name, why) == ("slurm", "auto: SLURM_JOB_ID=42 is set: inside a SLURM allocation")
    info, why = choose_launcher(Settings(), registry, environ={"PE_HOSTFILE": "/x", "JOB_ID": "3"})
    assert info.name == "sge"
    info, _ = choose_launcher(Settings(), registry, environ={"PBS_JOBID": "3"})
    assert info.name == "pbs"


@pytest.mark.parametrize("environ, expected", [
    ({"SLURM_JOB_ID": "7", "SLURM_NTASKS": "6"}, (6, "plugin slurm (SLURM_NTASKS=6)")),
    ({"PE_HOSTFILE": "/x", "NSLOTS": "3"}, (3, "plugin sge (NSLOTS=3)")),
    ({}, (1, "default")),
])
def test_inside_an_allocation_procs_defaults_to_its_size(monkeypatch, environ, expected):
    from pastset.launch.plugins import make_plugin_manager
    from pastset.settings.load import load_settings

    for name in ("SLURM_JOB_ID", "SLURM_JOBID", "SLURM_NTASKS", "SLURM_NPROCS", "SLURM_JOB_NUM_NODES",
                 "PE_HOSTFILE", "NSLOTS", "PBS_NODEFILE", "PBS_JOBID", "PSLAUNCHER", "PSPROCS"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    settings = load_settings(environ=dict(environ), system_files=[], user_files=[], cwd="/nonexistent",
                             plugin_manager=make_plugin_manager(autoload=False))
    assert (settings.procs, settings.source("procs")) == expected


def test_allocation_size_never_overrides_what_the_user_said(monkeypatch):
    from pastset.launch.plugins import make_plugin_manager
    from pastset.settings.load import load_settings

    monkeypatch.setenv("SLURM_JOB_ID", "7")
    monkeypatch.setenv("SLURM_NTASKS", "6")
    environ = {"SLURM_JOB_ID": "7", "SLURM_NTASKS": "6", "PSPROCS": "2"}
    settings = load_settings(environ=environ, system_files=[], user_files=[], cwd="/nonexistent",
                             plugin_manager=make_plugin_manager(autoload=False))
    assert (settings.procs, settings.source("procs")) == (2, "environment PSPROCS")
    monkeypatch.setenv("PSLAUNCHER", "local")  # another launcher asked for: not our allocation's business
    environ = {"SLURM_JOB_ID": "7", "SLURM_NTASKS": "6", "PSLAUNCHER": "local"}
    settings = load_settings(environ=environ, system_files=[], user_files=[], cwd="/nonexistent",
                             plugin_manager=make_plugin_manager(autoload=False))
    assert (settings.procs, settings.source("procs"), settings.launcher) == (1, "default", "local")


# --------------------------------------------------------------------------- prologue

PROLOGUE = ["module load python/3.11", "source ~/venv/bin/activate", "export FOO='a b'"]


def test_prologue_is_a_list_or_one_multi_line_string():
    assert make(SgeLauncher, {"prologue": ["a", "b"]}).prologue == ["a", "b"]
    assert make(SgeLauncher, {"prologue": "a\n\n  b\n"}).prologue == ["a", "  b"]
    assert make(SgeLauncher, {"prologue": ["x\ny", " "]}).prologue == ["x", "y"]
    assert make(SgeLauncher, {"prologue": ""}).prologue == [] and make(SgeLauncher).prologue == []
    with pytest.raises(LaunchError, match=r"\[pastset.launcher.sge\] prologue: 3 .*is not a list of strings"):
        make(SgeLauncher, {"prologue": 3})


def script_and_command(cls):
    """A launcher with PROLOGUE, its job script's lines, and the command slot (quoted newlines
    inside the wrapped worker make it span lines)."""
    launcher = make(cls, {"prologue": PROLOGUE})
    text = launcher.script_text(launch(2), FILES)
    lines = text.splitlines()
    # the prologue lines come after cd, inside set -e, before the command; bash runs the script
    assert lines[0] == "#!/bin/bash"
    cd = lines.index("cd /home/u/app || exit 1")
    assert lines[cd + 1] == "set -e" and lines[cd + 4:cd + 7] == PROLOGUE and lines[cd + 9] == "set +e"
    command = text.split("\nset +e\n", 1)[1].rsplit("\nrm -f", 1)[0]
    assert command == launcher.job_command(launch(2), FILES)
    assert_no_secret(text)
    return launcher, text, command


def test_sbatch_script_with_a_prologue_runs_it_in_the_script_and_in_every_srun_task():
    slurm, text, command = script_and_command(SlurmLauncher)
    argv = shlex.split(command)
    assert argv[4:7] == ["env", "PYTHONPATH=/opt/pastset", "bash"]
    script, name, worker = argv[8], argv[9], argv[10:]
    assert argv[7] == "-c" and name == "pastset-prologue"
    assert all(line in script.splitlines() for line in PROLOGUE) and script.endswith('exec "$@"')
    assert argv[4:] == slurm.worker_command(launch(2), key_file=FILES.authkey)
    assert worker[:4] == [sys.executable, "-m", "pastset", "worker"] and worker[-1] == FILES.authkey


def test_srun_in_an_allocation_and_in_the_job_start_the_same_worker_command():
    slurm = make(SlurmLauncher, {"prologue": PROLOGUE}, {"SLURM_JOB_ID": "7"})
    inside = slurm.srun_argv(launch(2), slurm.worker_command(launch(2)))
    job = shlex.split(slurm.job_command(launch(2), FILES))
    assert job == inside + ["--authkey-file", FILES.authkey]


def test_qsub_script_with_a_prologue_uses_bash_and_quotes_the_wrapped_worker_for_qrsh():
    sge, text, command = script_and_command(SgeLauncher)
    assert "#$ -S /bin/bash" in text.splitlines()
    # the loop's "$host" stays an expansion, everything else one quoted argv
    start = command.index("qrsh")
    argv = shlex.split(command[start:command.index(" & i=")].replace(LOOP_HOST, "HOST"))
    assert argv == sge.qrsh_argv("HOST", sge.worker_command(launch(2), key_file=FILES.authkey), stdin=False)
    assert shlex.split(argv[4])[:4] == ["env", "PYTHONPATH=/opt/pastset", "bash", "-c"]


def test_pbs_script_with_a_prologue_quotes_it_once_for_pbsdsh_and_twice_for_ssh():
    pbs, text, command = script_and_command(PbsLauncher)
    worker = pbs.worker_command(launch(2), key_file=FILES.authkey)
    pbsdsh = command[command.index("pbsdsh --"):command.index("; else")]
    assert shlex.split(pbsdsh) == ["pbsdsh", "--", *worker]
    ssh = command[command.index("while read host; do ") + 20:command.index(" </dev/null &")]
    remote = shlex.split(ssh.replace(LOOP_HOST, "HOST"))
    assert remote == pbs.ssh_argv("HOST", worker) and shlex.split(remote[-1]) == worker


def test_no_prologue_keeps_sh_and_no_wrapper():
    text = make(SgeLauncher).script_text(launch(), FILES)
    assert text.startswith("#!/bin/sh\n") and "#$ -S /bin/sh" in text
    assert "bash" not in text and "set -e" not in text
