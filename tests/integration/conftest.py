"""Fixtures for integration tests: real sshd hosts, SLURM and Grid Engine, one each per session.

Each fixture starts its cluster only when a test first asks for it and stops it at the end of
the session.  Without root or the system packages (.ci/system-packages.sh) the tests that need
a cluster are skipped -- or fail when ``CI=true``, so CI cannot go green without running them.
Every test in this directory gets the ``integration`` marker and a longer timeout.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Iterator, Sequence

import pytest

from .batchrun import SGE, SLURM, BatchSystem, batch_setup
from .clusters import (
    SgeCluster,
    SlurmCluster,
    SshCluster,
    start_sge_cluster,
    start_slurm_cluster,
    start_ssh_cluster,
)
from helpers.components import require

_HERE = Path(__file__).resolve().parent


#: seconds an integration test may take, its share of session fixtures included: the first
#: test on Grid Engine may wait 300 s for another session's cluster, then start its own
TIMEOUT = 900


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test below this directory ``integration`` and give it :data:`TIMEOUT`
    unless it sets its own (the hook sees all items)."""
    for item in items:
        if _HERE in Path(str(item.path)).resolve().parents:
            item.add_marker(pytest.mark.integration)
            if item.get_closest_marker("timeout") is None:
                item.add_marker(pytest.mark.timeout(TIMEOUT))


def _require_root_and(binaries: Sequence[str], what: str) -> None:
    require(hasattr(os, "geteuid") and os.geteuid() == 0,
            f"{what} needs root (network namespaces, daemons)")
    for binary in binaries:
        require(shutil.which(binary),
                f"{what} needs {binary}: run .ci/system-packages.sh as root")


@pytest.fixture(scope="session")
def ssh_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshCluster]:
    """sshd "hosts" in network namespaces (see :class:`clusters.SshCluster`)."""
    _require_root_and(SshCluster.BINARIES, "the ssh cluster")
    with start_ssh_cluster(tmp_path_factory.mktemp("ssh-cluster"), nodes=2) as cluster:
        yield cluster


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SlurmCluster]:
    """A one-node SLURM cluster with a private config (see :class:`clusters.SlurmCluster`)."""
    _require_root_and(SlurmCluster.BINARIES, "the SLURM cluster")
    with start_slurm_cluster(tmp_path_factory.mktemp("slurm-cluster")) as cluster:
        yield cluster


@pytest.fixture(scope="session")
def sge_cluster() -> Iterator[SgeCluster]:
    """A one-node Grid Engine with PE ``smp`` (see :class:`clusters.SgeCluster`)."""
    _require_root_and(SgeCluster.BINARIES, "the Grid Engine cluster")
    with start_sge_cluster() as cluster:
        yield cluster


@pytest.fixture(params=[SLURM, SGE], ids=str)
def system(request: pytest.FixtureRequest) -> BatchSystem:
    """The batch system a test runs on: both by default; a test module of one system narrows
    it with ``parametrize("system", [SLURM], indirect=True)``."""
    return request.param


@pytest.fixture
def setup(system: BatchSystem, request: pytest.FixtureRequest, tmp_path: Path):
    """(cluster, bin dir, env, tmp) for a run on ``system``; afterwards nothing of the test may
    stay behind (see :func:`batchrun.batch_setup`)."""
    yield from batch_setup(request.getfixturevalue(system.fixture), tmp_path)
