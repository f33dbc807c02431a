"""Real clusters on this one machine for integration tests: sshd "hosts", SLURM, Grid Engine.

The launcher tests need the real programs a user has (OpenSSH, srun/sbatch, qsub/qrsh), so each
class here starts real daemons, on private addresses/ports/directories where the program allows
it, tracks every PID it started, and tears everything down in ``stop()`` -- also when ``start()``
fails halfway (``with`` and the ``start_*`` context managers call ``stop()`` on any failure).
One module per cluster kind, the shared life cycle and helpers in :mod:`.base`:

- :class:`SshCluster`: a Linux bridge plus one network namespace per node, each with its own
  address and its own sshd; a firewalled node, a password-only node, a dead address and an sshd
  on the master side of the bridge (for ssh port forwarding from the firewalled node).
- :class:`SlurmCluster`: munged + slurmctld + slurmd on free ports with a private config.
- :class:`SgeCluster`: Son of Grid Engine qmaster + execd (fixed system paths, so one per machine)
  with a parallel environment ``smp`` in which ``qrsh -inherit`` works.

Everything needs root; the system packages are installed by .ci/system-packages.sh.
"""

from __future__ import annotations

from .base import ClusterError, DaemonDied
from .sge import SgeCluster, start_sge_cluster
from .slurm import SlurmCluster, start_slurm_cluster
from .ssh import SshCluster, start_ssh_cluster

__all__ = [
    "ClusterError",
    "DaemonDied",
    "SgeCluster",
    "SlurmCluster",
    "SshCluster",
    "start_sge_cluster",
    "start_slurm_cluster",
    "start_ssh_cluster",
]
