"""Processes that leave their parent stay ours to end: Linux's child subreaper.

A daemon forks, lets its parent exit, calls ``setsid`` and forks again: its last process
has left every process group and session of ours and would be handed to init, where
nothing of the run could find it. A process that has made itself a *child subreaper*
(``prctl(PR_SET_CHILD_SUBREAPER)``, :func:`become_subreaper`) is handed the orphans of
its descendants instead, so they stay in its tree: each worker is one for what its tasks
start, and ``pastset run`` for what the app starts. :func:`adopted` lists the orphans it
holds, :func:`end_descendants` ends them (and everything below it), and
:func:`reap_adopted` reaps those that exited, which would stay zombies of ours. A
process killed outright cannot end anything: :func:`fork_keeper` puts a small keeper
above it that can (each worker has one, so a lost worker leaves nothing behind).
"""
from __future__ import annotations

import os
import signal
import threading
from typing import Dict, List, Optional, Sequence, Set

from ..observe.procstat import ProcessTable
from .processes import PR_SET_PDEATHSIG, kill_processes, prctl, process_identity, reap_others, started_children

#: prctl option that makes the calling process the reaper of its descendants' orphans
PR_SET_CHILD_SUBREAPER = 36

Identity = Dict[str, Optional[int]]


def become_subreaper() -> bool:
    """Make this process the child subreaper of its descendants; False where the kernel
    has none (not Linux), so orphans go to init as usual."""
    return prctl(PR_SET_CHILD_SUBREAPER, 1)


def _identities(pids: Sequence[int]) -> List[Identity]:
    found = [process_identity(pid) for pid in pids]
    return [i for i in found if i["start"] is not None]


def descendants(pid: Optional[int] = None) -> List[Identity]:
    """Identities of the live descendants of ``pid`` (default: this process)."""
    return _identities(ProcessTable().descendants(os.getpid() if pid is None else pid))


def adopted() -> List[Identity]:
    """Identities of the orphans this process holds and of everything below them.

    An orphan is a child of this process that it did not start: neither through
    :func:`pastset.launch.processes.start_child` nor as a command of its own session (a
    short command such as ``sbatch`` run with ``subprocess``); every process an app or a
    task starts lives in a session of its own, and a daemon's last process in a newer one.
    """
    table, ours, session = ProcessTable(), started_children(), os.getsid(0)
    orphans = [child for child in table.children.get(os.getpid(), ()) if _orphan(child, ours, session)]
    pids = []
    for orphan in orphans:
        pids.append(orphan)
        pids.extend(table.descendants(orphan))
    return _identities(pids)


def _orphan(pid: int, ours: Set[int], session: int) -> bool:
    """Whether our child ``pid`` (live or exited) is an orphan we were handed."""
    try:
        return pid not in ours and os.getsid(pid) != session
    except ProcessLookupError:
        return False


def end_processes(identities: Sequence[Identity], grace: float) -> int:
    """SIGTERM ``identities``, SIGKILL those left after ``grace`` s, and reap the orphans
    of ours among them; return how many there were."""
    if identities:
        kill_processes(identities, grace)
        reap_adopted()
    return len(identities)


def end_descendants(grace: float) -> int:
    """End every descendant of this process (what a worker does last); return how many."""
    return end_processes(descendants(), grace)


def reap_adopted() -> List[int]:
    """Reap the orphans handed to this process that have exited (else they stay zombies
    of ours); return their PIDs. Children it started itself are left to their waiters."""
    try:
        if os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None:
            return []  # no child has exited
    except ChildProcessError:
        return []
    ours, session = started_children(), os.getsid(0)
    exited = ProcessTable().zombies.get(os.getpid(), [])
    return reap_others([pid for pid in exited if _orphan(pid, ours, session)])


def fork_keeper(grace: float) -> Optional[int]:
    """Fork: the child returns None and goes on as the program; this process becomes its
    keeper, which outlives it even when it is killed outright.

    The keeper is the child subreaper of everything below, passes SIGTERM, SIGHUP and
    SIGINT on to the child, waits for it to exit, then ends whatever is left below it
    (SIGTERM, SIGKILL after ``grace`` s) and returns the child's exit status (128 + N
    for a signal N). The child dies with its keeper (PR_SET_PDEATHSIG). The keeper gets
    SIGTERM when its own parent dies (the process that started it, even one SIGKILLed),
    so even then the child stops in order and nothing is left. Call it before any thread
    starts: only the calling thread goes on in the child.
    """
    become_subreaper()
    keeper, parent = os.getpid(), os.getppid()
    child = os.fork()
    if child == 0:
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != keeper:  # the keeper died before the line above
            os._exit(1)
        return None
    for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(signum, lambda signum, frame: _pass_on(child, signum))
    prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # the parent died before the line above
        _pass_on(child, signal.SIGTERM)
    _, status = os.waitpid(child, 0)  # PEP 475: a handled signal does not end the wait
    for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(signum, signal.SIG_IGN)  # what follows is bounded; let it finish
    end_descendants(grace)
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


def _pass_on(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass


class Reaper:
    """A thread that reaps exited orphans every ``interval`` s (:func:`reap_adopted`),
    for a subreaper that lives long: a worker."""

    def __init__(self, interval: float = 1.0):
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="pastset-reaper", daemon=True)

    def start(self) -> "Reaper":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            reap_adopted()
