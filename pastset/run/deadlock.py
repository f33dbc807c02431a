"""Deadlock detection for a run, its report, and the end-of-run failure summary.

A run is deadlocked when the app and every running task each wait in a PastSet call
without a timeout, no task is queued or starting, no worker is still starting, and that
has held for ``grace`` seconds: nothing can ever wake them. A participant (the app or a
running task) counts as *waiting* only when all of these hold:

* it has at least one call waiting on the server, and every such call is without a
  timeout (a call with a timeout will return and the process may act);
* no thread of it sleeps on a timer (``time.sleep``, a wait with a timeout): that thread
  wakes on its own (:func:`pastset.run.procstat.timed_waits`);
* its CPU time (all threads) has not advanced during the grace period: a thread that is
  not in a PastSet call but computes would show there;
* each of its waiting calls has itself waited at least the grace period (a call that
  returned and a new one that began is progress).

A process computing or sleeping between calls has no waiting call, so it is never
waiting. :class:`Detector` is pure — fed :class:`Observation` s with timestamps — so
each rule is tested without processes; the run feeds it every ``interval`` seconds.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Tuple

from .procstat import sample

#: CPU seconds a waiting process may use over the grace period (one clock tick is 0.01 s,
#: and reading /proc itself or a signal may cost a tick or two)
CPU_TOLERANCE = 0.03
#: how often the run should feed the detector (seconds)
INTERVAL = 0.25
#: the participant name of the application
APP = "app"


def participant_of(wait: Mapping[str, Any]) -> Optional[str]:
    """Whose call a waiting call (a wait registry snapshot entry) is: "app", a task id,
    or None for callers that are not participants (workers, other clients)."""
    caller = wait.get("caller") or {}
    if caller.get("kind") == "app":
        return APP
    if caller.get("kind") == "task":
        return caller.get("task")
    return None


@dataclass
class Observation:
    """The run at one instant, as the detector needs it.

    ``waits``: the server's waiting calls (wait registry snapshot entries: ``caller``,
    ``operation``, ``element``, ``template``, ``timeout``, ``waited_s`` …).
    ``processes``: the app and every running task by participant name, each a process
    sample (``cpu``, ``timed``, ``alive``; None when no sample came yet).
    ``pending``: tasks queued or handed to a worker but not yet running.
    ``starting``: workers launched that have neither registered nor failed.
    """

    waits: List[Mapping[str, Any]]
    processes: Dict[str, Optional[Mapping[str, Any]]]
    pending: int = 0
    starting: int = 0


@dataclass
class Verdict:
    """A deadlock: when it was decided, for how long it held, and the calls involved."""

    at: float
    held: float
    waits: List[Mapping[str, Any]] = field(default_factory=list)


class Detector:
    """Decides deadlock from a series of observations (see the module's rules).

    :meth:`observe` returns a :class:`Verdict` once per deadlock: after that it stays
    quiet until the run moves again (some participant stops waiting), so with
    ``on_deadlock = "report"`` the report is printed once.
    """

    def __init__(self, grace: float, cpu_tolerance: float = CPU_TOLERANCE):
        if grace < 0:
            raise ValueError(f"deadlock grace must be >= 0 seconds, not {grace!r}")
        self.grace = grace
        self.cpu_tolerance = cpu_tolerance
        self._since: Optional[float] = None  # when everything started looking stuck
        self._cpu: Dict[str, Optional[float]] = {}  # CPU of each participant then
        self._reported = False
        self._why: Optional[str] = "nothing observed yet"  # why the last observation is no deadlock
        # (why, since, reported) of the last observation, replaced whole so that another
        # thread (the dashboard's) reads one observation's values
        self._latest: Tuple[Optional[str], Optional[float], bool] = (self._why, None, False)

    def why_not(self, obs: Observation) -> Optional[str]:
        """Why this observation alone is not a deadlock (None: it looks stuck)."""
        if APP not in obs.processes:
            return "the app is not running"
        if obs.pending:
            return f"{obs.pending} task(s) queued or starting"
        if obs.starting:
            return f"{obs.starting} worker(s) still starting"
        calls: Dict[str, List[Mapping[str, Any]]] = {name: [] for name in obs.processes}
        for wait in obs.waits:
            name = participant_of(wait)
            if name in calls:
                calls[name].append(wait)
        for name, waits in calls.items():
            sample = obs.processes[name]
            if not waits:
                return f"{name} is not in a PastSet call"
            if any(w.get("timeout") is not None for w in waits):
                return f"{name} waits in a call with a timeout"
            if sample is not None and not sample.get("alive", True):
                return f"{name} has exited"
            if sample is not None and sample.get("timed"):
                return f"{name} has a thread sleeping with a timeout"
        return None

    def observe(self, now: float, obs: Observation) -> Optional[Verdict]:
        """Feed one observation taken at ``now`` (monotonic seconds); a Verdict on deadlock."""
        verdict = self._observe(now, obs)
        self._latest = (self._why, self._since, self._reported)
        return verdict

    def state(self, now: float) -> Dict[str, Any]:
        """Where detection stands at ``now`` (same clock as :meth:`observe`), as the status
        document's ``runner.deadlock`` says it: ``moving`` with the ``reason``, ``stuck`` for
        ``stuck_s`` seconds of the ``grace``, or ``deadlock`` once reported."""
        why, since, reported = self._latest
        if why is not None:
            return {"state": "moving", "stuck_s": None, "grace": self.grace, "reason": why}
        stuck = round(max(0.0, now - since), 3) if since is not None else 0.0
        return {"state": "deadlock" if reported else "stuck", "stuck_s": stuck, "grace": self.grace,
                "reason": None}

    def _observe(self, now: float, obs: Observation) -> Optional[Verdict]:
        self._why = self.why_not(obs)
        if self._why is not None:
            self._since, self._reported = None, False
            return None
        cpu = {name: (s or {}).get("cpu") for name, s in obs.processes.items()}
        if self._since is None or set(cpu) != set(self._cpu) or self._cpu_moved(cpu):
            self._since, self._cpu = now, cpu
        held = now - self._since
        mine = [w for w in obs.waits if participant_of(w) in obs.processes]
        youngest = min((w.get("waited_s", 0.0) for w in mine), default=0.0)
        if held < self.grace or youngest < self.grace or self._reported:
            return None
        self._reported = True
        return Verdict(at=now, held=held, waits=list(mine))

    def _cpu_moved(self, cpu: Dict[str, Optional[float]]) -> bool:
        for name, value in cpu.items():
            before = self._cpu.get(name)
            if value is not None and before is not None and value - before > self.cpu_tolerance:
                return True
        return False


def observation(view: Mapping[str, Any], app: Optional[Mapping[str, Any]], starting: int) -> Observation:
    """An Observation from the server's deadlock view and the runner's own facts.

    ``view`` is what the server gathers in one call: ``waits`` (the wait registry's
    snapshot) and ``activity`` (:meth:`pastset.space.scheduler.Scheduler.activity`, whose
    running tasks carry their workers' samples). ``app`` is the runner's sample of the
    app process; ``starting`` the workers launched but not yet registered.
    """
    activity = view["activity"]
    processes: Dict[str, Optional[Mapping[str, Any]]] = {APP: app}
    for task in activity["running"]:
        processes[task["id"]] = task.get("sample")
    return Observation(waits=list(view["waits"]), processes=processes,
                       pending=activity["pending"], starting=starting)


class DeadlockWatch:
    """The runner's side: every ``interval`` s fetch the server's view, sample the app,
    feed the detector, and call ``on_deadlock(verdict, view)`` when it decides.

    ``fetch_view()`` returns the server's deadlock view (see :func:`observation`; it may
    also carry ``elements``: element id -> first/last/delta, for the report);
    ``starting()`` the workers still starting. A failing fetch (the server going away at
    the end of the run) is skipped.
    """

    def __init__(self, grace: float, fetch_view: Callable[[], Mapping[str, Any]], app_pid: int,
                 starting: Callable[[], int], on_deadlock: Callable[[Verdict, Mapping[str, Any]], None],
                 interval: float = INTERVAL, clock: Callable[[], float] = time.monotonic):
        self.detector = Detector(grace)
        self.fetch_view, self.app_pid, self.starting = fetch_view, app_pid, starting
        self.on_deadlock, self.interval, self.clock = on_deadlock, interval, clock
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def check(self) -> Optional[Verdict]:
        """One look; the verdict if this look decided a deadlock (after reporting it)."""
        view = self.fetch_view()
        obs = observation(view, sample(self.app_pid).as_dict(), self.starting())
        verdict = self.detector.observe(self.clock(), obs)
        if verdict is not None:
            self.on_deadlock(verdict, view)
        return verdict

    def state(self) -> Dict[str, Any]:
        """Where detection stands now (:meth:`Detector.state`)."""
        return self.detector.state(self.clock())

    def start(self) -> "DeadlockWatch":
        self._thread = threading.Thread(target=self._loop, name="pastset-deadlock", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(5)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.check()
            except Exception:  # noqa: BLE001 - the run ends or the server is going: not ours to report
                continue


class TaskSampler:
    """The worker's side: every ``interval`` s sample its running tasks' processes on
    this host and ``report({task id: sample dict})`` them (the server's
    ``task_samples``), so tasks on ssh hosts and batch nodes are seen like local ones.

    ``pids()`` returns the running tasks now: task id -> pid. Nothing is sent while no
    task runs.
    """

    def __init__(self, pids: Callable[[], Mapping[str, int]],
                 report: Callable[[Dict[str, Dict[str, Any]]], None], interval: float = INTERVAL):
        self.pids, self.report, self.interval = pids, report, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="pastset-task-sampler", daemon=True)

    def samples(self) -> Dict[str, Dict[str, Any]]:
        return {task_id: sample(pid).as_dict() for task_id, pid in dict(self.pids()).items()}

    def start(self) -> "TaskSampler":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(5)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            samples = self.samples()
            if samples:
                try:
                    self.report(samples)
                except Exception:  # noqa: BLE001 - the run is ending; the worker notices elsewhere
                    continue


def _element_line(stats: Optional[Mapping[str, Any]]) -> str:
    if not stats:
        return ""
    delta = stats.get("delta")
    return f"first={stats.get('first')} last={stats.get('last')} delta={'none' if delta is None else delta}"


def task_failure(task: Mapping[str, Any]) -> str:
    """One line about a failed or lost task: id, application, what happened, where."""
    if task.get("state") == "lost":
        what = f"was lost: {task.get('error') or 'its worker was lost'}"
    elif task.get("error"):
        what = f"{'failed' if task.get('ran') else 'never ran'}: {task['error']}"
    elif task.get("returncode") is not None and task["returncode"] < 0:
        what = f"killed by signal {-task['returncode']}"
    else:
        what = f"exited with code {task.get('returncode')}"
    where = "@".join(str(p) for p in (task.get("worker"), task.get("host")) if p)
    return f"task {task['id']} ({task['app']}) {what}" + (f" [{where}]" if where else "")


def format_report(waits: Iterable[Mapping[str, Any]], elements: Mapping[Any, Mapping[str, Any]],
                  failed: Iterable[Mapping[str, Any]], held: float, aborting: bool = True) -> str:
    """The deadlock report printed on stderr (several lines, no trailing newline).

    ``waits``: the waiting calls of the verdict; ``elements``: element id -> its
    ``first``/``last``/``delta`` now; ``failed``: the scheduler's failed tasks
    (``task_view`` dicts); ``held``: seconds the deadlock has lasted.
    """
    waits = list(waits)
    then = "stopping the run (exit status 3)" if aborting else "still waiting (on_deadlock = report)"
    lines = [f"pastset: deadlock: the app and every running task have waited {held:.1f} s in PastSet "
             f"calls that nothing can complete; {then}"]
    rows = []
    for wait in sorted(waits, key=lambda w: (participant_of(w) != APP, str(participant_of(w)))):
        rows.append((str(wait.get("who") or participant_of(wait)), str(wait.get("operation")),
                     str(wait.get("template")), _element_line(elements.get(wait.get("element"))),
                     f"waiting {wait.get('waited_s', 0.0):.1f} s"))
    widths = [max((len(r[i]) for r in rows), default=0) for i in range(4)]
    for row in rows:
        lines.append("  " + "  ".join(cell.ljust(widths[i]) if i < 4 else cell
                                      for i, cell in enumerate(row)).rstrip())
    failed = list(failed)
    if failed:
        lines.append("tasks that failed during the run (a result they should have moved may be missing):")
        lines.extend("  " + task_failure(t) for t in failed)
    else:
        lines.append("no task failed: the calls above wait for tuples that no one will move "
                     "(check the templates, and that every move has its observe)")
    return "\n".join(lines)


def failure_summary(failed: Iterable[Mapping[str, Any]], total: int) -> Optional[str]:
    """The run's last stderr lines when tasks failed ("N of M tasks failed:" and which), or None."""
    failed = list(failed)
    if not failed:
        return None
    noun = "task" if total == 1 else "tasks"
    lines = [f"pastset: {len(failed)} of {total} {noun} failed:"]
    lines.extend("  " + task_failure(t) for t in failed)
    return "\n".join(lines)
