"""Deadlock detection for a run, its report, and the end-of-run failure summary.

A run is deadlocked when nothing of it can move, and that has held for ``grace``
seconds. Nothing can move when, at every look over the grace:

* no task is queued or starting and no worker is still starting — except a task queued
  only because every slot of every worker is held by running tasks: it starts when one of
  them ends, so it is as stuck as they are (the report names it);
* some call of the app or of a running task waits in PastSet without a timeout, and no
  call of theirs waits with one (a call with a timeout returns, and its caller may act);
* every thread of the app and of each running task — and of every live process descended
  from them (:mod:`pastset.observe.procstat`) — is either inside one of those calls (the
  server knows which thread makes each: a client names its thread when it connects) or
  ``blocked`` without a timeout on a lock, condition or join of its own process, which
  only another of its threads could release. A thread running, asleep with a timeout, or
  waiting on anything else (a child process, a pipe, a socket, select/poll, I/O) may
  still move something, and so may a child process that computes;
* a call running an element's X-function is inside code the server runs: it counts as
  waiting only while the server thread running that code is itself ``blocked``;
* no CPU time was used (over all those processes, and by X-function code), no thread or
  process came or went, and each waiting call has itself waited the whole grace (a call
  that returned and a new one that began is progress).

Where the kernel does not show what a thread waits on (not Linux, an unknown
architecture, a process not ours to inspect), a participant is judged by its calls
alone, as if all its other threads were blocked: such a verdict is *uncertain* and the
run reports it without stopping. :class:`Detector` is pure — fed :class:`Observation` s
with timestamps — so each rule is tested without processes; the run feeds it every
``interval`` seconds (:class:`DeadlockWatch`, with the workers' :class:`TaskSampler`).
"""
from __future__ import annotations

import platform
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Set, Tuple

from ..observe.procstat import BLOCKED, RUNNING, TIMED, UNKNOWN, Sampler
from ..space.waits import Caller

#: CPU seconds a waiting process may use over the grace period (one clock tick is 0.01 s,
#: and reading /proc itself or a signal may cost a tick or two)
CPU_TOLERANCE = 0.03
#: how often the run should feed the detector (seconds)
INTERVAL = 0.25
#: the participant name of the application
APP = "app"
#: what the report's first line says an aborting run does, when it is ``pastset run``
STOPPING = "stopping the run (exit status 3)"

_MAY_ACT = {RUNNING: "is running", TIMED: "sleeps with a timeout"}


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
    ``operation``, ``element``, ``template``, ``timeout``, ``waited_s`` …; a call running
    an X-function also ``server_state`` and ``server_cpu``).
    ``processes``: the app and every running task by participant name, each a process
    sample (:class:`pastset.observe.procstat.ProcessSample` as a dict; None when no sample
    came yet). ``pending``: tasks queued or handed to a worker but not yet running.
    ``starting``: workers launched that have neither registered nor failed.
    ``hosts``: where each participant runs (for what the report says it could not see).
    ``slot_bound``: queued tasks waiting only for a slot that running tasks hold
    (:meth:`pastset.space.scheduler.Scheduler.activity`); they start when a holder ends.
    """

    waits: List[Mapping[str, Any]]
    processes: Dict[str, Optional[Mapping[str, Any]]]
    pending: int = 0
    starting: int = 0
    hosts: Dict[str, str] = field(default_factory=dict)
    slot_bound: List[Mapping[str, Any]] = field(default_factory=list)


@dataclass
class Verdict:
    """A deadlock: when it was decided, for how long it held, and the calls involved.

    ``blocked``: participant -> how many of its threads are blocked on its own locks,
    conditions or joins outside any PastSet call. ``doubts``: why the verdict is not
    certain (what could not be seen); a run stops only on a certain one. ``queued``: the
    tasks that cannot start because the waiting tasks hold every slot.
    """

    at: float
    held: float
    waits: List[Mapping[str, Any]] = field(default_factory=list)
    blocked: Dict[str, int] = field(default_factory=dict)
    doubts: List[str] = field(default_factory=list)
    queued: List[Mapping[str, Any]] = field(default_factory=list)

    @property
    def certain(self) -> bool:
        return not self.doubts


@dataclass
class Judgement:
    """One observation judged: why it is no deadlock (None: nothing can move), and if it
    looks stuck, the threads blocked outside PastSet and what could not be seen."""

    why_not: Optional[str]
    blocked: Dict[str, int] = field(default_factory=dict)
    doubts: List[str] = field(default_factory=list)


def _where(name: str, obs: Observation) -> str:
    host = obs.hosts.get(name)
    return f"{name} on {host}" if host else name


def judge(obs: Observation) -> Judgement:
    """Whether this observation alone looks like a deadlock (see the module's rules)."""
    if APP not in obs.processes:
        return Judgement("the app is not running")
    if obs.pending:
        return Judgement(f"{obs.pending} task(s) queued or starting")
    if obs.starting:
        return Judgement(f"{obs.starting} worker(s) still starting")
    calls: Dict[str, List[Mapping[str, Any]]] = {name: [] for name in obs.processes}
    for wait in obs.waits:
        name = participant_of(wait)
        if name in calls:
            calls[name].append(wait)
    if not any(calls.values()):
        return Judgement("no call of the app or a task waits in PastSet")
    blocked: Dict[str, int] = {}
    doubts: List[str] = []
    for name, waits in calls.items():
        if any(w.get("timeout") is not None for w in waits):
            return Judgement(f"{name} waits in a call with a timeout")
        for wait in waits:
            if "xfunction" not in wait:
                continue
            state = wait.get("server_state")
            if state in (None, UNKNOWN):
                doubts.append(f"the server cannot see what X-function {wait['xfunction']} code does")
            elif state != BLOCKED:
                return Judgement(f"{name}'s call runs X-function {wait['xfunction']} code, which "
                                 f"{_MAY_ACT.get(state, 'waits on something outside the server')}")
        sample = obs.processes[name]
        if sample is not None and not sample.get("alive", True):
            return Judgement(f"{name} has exited")
        threads = sample.get("threads") if sample is not None else None
        if threads is None:  # judged by its calls alone
            if not waits:
                return Judgement(f"{name} is not in a PastSet call")
            if sample is not None and sample.get("timed"):
                return Judgement(f"{name} has a thread sleeping with a timeout")
            doubts.append(f"what the threads of {_where(name, obs)} do cannot be seen"
                          + (f" ({sample['unreadable']})" if sample and sample.get("unreadable") else ""))
            continue
        inside = {(w.get("caller") or {}).get("thread") for w in waits}
        count, unknown = 0, 0
        for tid, state in threads.items():
            if tid in inside:
                continue
            if state == BLOCKED:
                count += 1
            elif state == UNKNOWN:
                unknown += 1
            else:
                doing = _MAY_ACT.get(state, "waits on something outside its process (a child, a pipe, "
                                            "a socket, select/poll, I/O)")
                return Judgement(f"{name} has a thread that may still act (thread {tid} {doing})")
        if not waits and not count:
            return Judgement(f"{name} is not in a PastSet call")
        if count:
            blocked[name] = count
        if unknown:
            doubts.append(f"what {unknown} thread{' waits' if unknown == 1 else 's wait'} on in "
                          f"{_where(name, obs)} cannot be seen"
                          + (f" ({sample['unreadable']})" if sample and sample.get("unreadable") else ""))
    return Judgement(None, blocked, doubts)


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
        self._cpu: Dict[str, Optional[float]] = {}  # CPU of each participant (and X-function) then
        self._threads: Dict[str, Any] = {}  # the threads each participant had then
        self._reported = False
        self._why: Optional[str] = "nothing observed yet"  # why the last observation is no deadlock
        # (why, since, reported) of the last observation, replaced whole so that another
        # thread (the dashboard's) reads one observation's values
        self._latest: Tuple[Optional[str], Optional[float], bool] = (self._why, None, False)

    def why_not(self, obs: Observation) -> Optional[str]:
        """Why this observation alone is not a deadlock (None: it looks stuck)."""
        return judge(obs).why_not

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
        judgement = judge(obs)
        self._why = judgement.why_not
        if self._why is not None:
            self._since, self._reported = None, False
            return None
        cpu: Dict[str, Optional[float]] = {name: (s or {}).get("cpu") for name, s in obs.processes.items()}
        for wait in obs.waits:
            if "server_cpu" in wait:
                cpu[f"X-function call {wait.get('id')}"] = wait["server_cpu"]
        threads = {name: frozenset((s or {}).get("threads") or ()) for name, s in obs.processes.items()}
        if (self._since is None or set(cpu) != set(self._cpu) or threads != self._threads
                or self._cpu_moved(cpu)):
            self._since, self._cpu, self._threads = now, cpu, threads
        held = now - self._since
        mine = [w for w in obs.waits if participant_of(w) in obs.processes]
        youngest = min((w.get("waited_s", 0.0) for w in mine), default=0.0)
        if held < self.grace or youngest < self.grace or self._reported:
            return None
        self._reported = True
        return Verdict(at=now, held=held, waits=list(mine), blocked=judgement.blocked, doubts=judgement.doubts,
                       queued=list(obs.slot_bound))

    def _cpu_moved(self, cpu: Dict[str, Optional[float]]) -> bool:
        for name, value in cpu.items():
            before = self._cpu.get(name)
            if value is not None and before is not None and value - before > self.cpu_tolerance:
                return True
        return False


def observation(view: Mapping[str, Any], app: Optional[Mapping[str, Any]], starting: int,
                app_host: str = "") -> Observation:
    """An Observation from the server's deadlock view and the runner's own facts.

    ``view`` is what the server gathers in one call: ``waits`` (the wait registry's
    snapshot) and ``activity`` (:meth:`pastset.space.scheduler.Scheduler.activity`, whose
    running tasks carry their workers' samples). ``app`` is the runner's sample of the
    app process, on ``app_host``; ``starting`` the workers launched but not yet registered.
    """
    activity = view["activity"]
    processes: Dict[str, Optional[Mapping[str, Any]]] = {APP: app}
    hosts = {APP: app_host} if app_host else {}
    for task in activity["running"]:
        processes[task["id"]] = task.get("sample")
        if task.get("host"):
            hosts[task["id"]] = str(task["host"])
    return Observation(waits=list(view["waits"]), processes=processes, pending=activity["pending"],
                       starting=starting, hosts=hosts, slot_bound=list(activity.get("slot_bound", ())))


class DeadlockWatch:
    """The runner's side: every ``interval`` s fetch the server's view, sample the app,
    feed the detector, and call ``on_deadlock(verdict, view)`` when it decides.

    ``fetch_view()`` returns the server's deadlock view (see :func:`observation`; it may
    also carry ``elements``: element id -> first/last/delta, for the report);
    ``starting()`` the workers still starting. On a verdict the view also gets ``held``
    from ``fetch_held()`` (the elements holding tuples nobody observes, for the report's
    near misses) when given. ``on_notice(host, reason)`` hears, once per host, that the
    threads there cannot be seen (its deadlocks are then reported, not stopped). A
    failing fetch (the server going away at the end of the run) is skipped.
    """

    def __init__(self, grace: float, fetch_view: Callable[[], Mapping[str, Any]], app_pid: int,
                 starting: Callable[[], int], on_deadlock: Callable[[Verdict, Mapping[str, Any]], None],
                 interval: float = INTERVAL, clock: Callable[[], float] = time.monotonic,
                 sample_app: Optional[Callable[[], Mapping[str, Any]]] = None,
                 fetch_held: Optional[Callable[[], Sequence[Mapping[str, Any]]]] = None,
                 on_notice: Optional[Callable[[str, str], None]] = None):
        """``sample_app()`` gives the app's sample when the process ``app_pid`` and its
        descendants, all their threads, are not what counts."""
        self.detector = Detector(grace)
        self.fetch_view, self.app_pid, self.starting = fetch_view, app_pid, starting
        self.on_deadlock, self.interval, self.clock = on_deadlock, interval, clock
        sampler = Sampler()
        self.sample_app = sample_app or (lambda: sampler.sample(app_pid).as_dict())
        self.fetch_held, self.on_notice = fetch_held, on_notice
        self.host = platform.node() or "this host"
        self._noticed: Set[str] = set()
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def check(self) -> Optional[Verdict]:
        """One look; the verdict if this look decided a deadlock (after reporting it)."""
        view = self.fetch_view()
        obs = observation(view, self.sample_app(), self.starting(), self.host)
        self._notice_blind_hosts(obs)
        verdict = self.detector.observe(self.clock(), obs)
        if verdict is not None:
            if self.fetch_held is not None:
                try:
                    view = dict(view, held=list(self.fetch_held()))
                except Exception:  # noqa: BLE001 - the report goes out without its near misses
                    pass
            self.on_deadlock(verdict, view)
        return verdict

    def state(self) -> Dict[str, Any]:
        """Where detection stands now (:meth:`Detector.state`)."""
        return self.detector.state(self.clock())

    def _notice_blind_hosts(self, obs: Observation) -> None:
        if self.on_notice is None:
            return
        for name, s in obs.processes.items():
            reason = (s or {}).get("unreadable")
            host = obs.hosts.get(name, "?")
            if reason and host not in self._noticed:
                self._noticed.add(host)
                self.on_notice(host, str(reason))

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
    """The worker's side: every ``interval`` s sample its running tasks' process trees on
    this host and ``report({task id: sample dict})`` them (the server's
    ``task_samples``), so tasks on ssh hosts and batch nodes are seen like local ones.

    ``pids()`` returns the running tasks now: task id -> pid. Nothing is sent while no
    task runs.
    """

    def __init__(self, pids: Callable[[], Mapping[str, int]],
                 report: Callable[[Dict[str, Dict[str, Any]]], None], interval: float = INTERVAL):
        self.pids, self.report, self.interval = pids, report, interval
        self._sampler = Sampler()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="pastset-task-sampler", daemon=True)

    def samples(self) -> Dict[str, Dict[str, Any]]:
        return {task_id: self._sampler.sample(pid).as_dict() for task_id, pid in dict(self.pids()).items()}

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


# -- the report ---------------------------------------------------------------------------

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


def _edits(a: str, b: str, most: int) -> int:
    """Levenshtein distance of ``a`` and ``b``, or ``most + 1`` once it exceeds ``most``."""
    if abs(len(a) - len(b)) > most:
        return most + 1
    row = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, cb in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (ca != cb))
        if min(row) > most:
            return most + 1
    return row[-1]


def _plural(a: str, b: str) -> bool:
    """Whether one word is the other's plural (``result``/``results``, ``box``/``boxes``,
    ``entry``/``entries``)."""
    one, many = (a, b) if len(a) < len(b) else (b, a)
    return bool(one) and many in (one + "s", one + "es", one[:-1] + "ies")


def near_miss(waited: Sequence[Sequence[str]], held: Sequence[Sequence[str]]) -> bool:
    """Whether template shape ``held`` (:func:`pastset.wire.validation.template_shape`)
    looks like a slip for ``waited``: the same length and types with its string tags one
    or two edits away in all, or a plural; or the same tags in the same order with other
    types."""
    waited, held = [tuple(i) for i in waited], [tuple(i) for i in held]
    if waited == held:
        return False
    tags_of = [[i for i in shape if i[0] != "type"] for shape in (waited, held)]
    if tags_of[0] and tags_of[0] == tags_of[1]:
        return True  # the same tags with other types
    if len(waited) != len(held):
        return False
    edits = 0
    for w, h in zip(waited, held):
        if w == h:
            continue
        if w[0] != "tag" or h[0] != "tag":
            return False
        edits += 1 if _plural(w[1], h[1]) else _edits(w[1], h[1], 2)
        if edits > 2:
            return False
    return True


def _waiter(wait: Mapping[str, Any]) -> str:
    name = participant_of(wait)
    return "the app" if name == APP else f"task {name}"


def held_lines(waits: Iterable[Mapping[str, Any]], elements: Mapping[Any, Mapping[str, Any]],
               held: Iterable[Mapping[str, Any]], most: int = 5) -> List[str]:
    """The report's lines on elements holding tuples nobody observes: near misses of a
    waited template first, each with the question it raises, then up to ``most`` others."""
    waits = list(waits)
    busy = {w.get("element") for w in waits}
    wanted: List[Tuple[Mapping[str, Any], Sequence[Sequence[str]]]] = []
    for wait in sorted(waits, key=lambda w: participant_of(w) != APP):
        shape = (elements.get(wait.get("element")) or {}).get("shape")
        if shape and str(wait.get("operation", "")).startswith("observe"):
            wanted.append((wait, shape))
    near, others = [], []
    for element in held:
        if element.get("id") in busy:
            continue
        n = int(element.get("unobserved", 0))
        text = f"  {element['template']} holds {n} tuple{'' if n == 1 else 's'} nobody observes"
        match = next((w for w, shape in wanted if near_miss(shape, element.get("shape") or ())), None)
        if match is not None:
            near.append(f"{text} — is it the one {_waiter(match)} waits for on {match.get('template')}?")
        else:
            others.append(text)
    if not near and not others:
        return []
    lines = ["elements holding tuples nobody observes:"] + near + others[:most]
    if len(others) > most:
        lines.append(f"  ... and {len(others) - most} more")
    return lines


def _operation(wait: Mapping[str, Any]) -> str:
    operation = str(wait.get("operation"))
    if wait.get("xfunction"):
        return f"{operation} in X-function {wait['xfunction']}"
    within = wait.get("within")
    if within:  # a wait inside X-function code: "observe in X-function xmod" when it is that call's own
        return within if str(within).startswith(operation + " in ") else f"{operation} ({within})"
    return operation


def format_report(waits: Iterable[Mapping[str, Any]], elements: Mapping[Any, Mapping[str, Any]],
                  failed: Iterable[Mapping[str, Any]], held: float, aborting: bool = True,
                  stopping: str = STOPPING, *, blocked: Sequence[Tuple[str, int]] = (),
                  doubts: Sequence[str] = (), held_elements: Iterable[Mapping[str, Any]] = (),
                  queued: Iterable[Mapping[str, Any]] = ()) -> str:
    """The deadlock report printed on stderr (several lines, no trailing newline).

    ``waits``: the waiting calls of the verdict; ``elements``: element id -> its
    ``first``/``last``/``delta`` (and template ``shape``) now; ``failed``: the scheduler's
    failed tasks (``task_view`` dicts); ``held``: seconds the deadlock has lasted;
    ``stopping``: what the run does when ``aborting``; ``blocked``: (who, how many threads)
    blocked on their own locks outside PastSet; ``doubts``: why the verdict is not certain
    (the run then keeps waiting); ``held_elements``: the server's elements holding tuples
    nobody has observed; ``queued``: tasks queued behind the slots the waiting tasks hold
    (``slot_bound`` entries of the scheduler's activity).
    """
    waits = list(waits)
    if doubts:
        then = f"not stopping the run: {'; '.join(doubts)}, so this may be no deadlock"
    else:
        then = stopping if aborting else "still waiting (on_deadlock = report)"
    lines = [f"pastset: deadlock: the app and every running task have waited {held:.1f} s in PastSet "
             f"calls that nothing can complete; {then}"]
    rows = []
    for wait in sorted(waits, key=lambda w: (participant_of(w) != APP, str(participant_of(w)))):
        template = wait.get("template")
        rows.append((str(wait.get("who") or participant_of(wait)), _operation(wait),
                     "" if template is None else str(template), _element_line(elements.get(wait.get("element"))),
                     f"waiting {wait.get('waited_s', 0.0):.1f} s"))
    widths = [max((len(r[i]) for r in rows), default=0) for i in range(4)]
    for row in rows:
        lines.append("  " + "  ".join(cell.ljust(widths[i]) if i < 4 else cell
                                      for i, cell in enumerate(row)).rstrip())
    for who, count in blocked:
        lines.append(f"  {who.ljust(widths[0])}  {count} thread{'' if count == 1 else 's'} blocked on a lock, "
                     "condition or join of its own process")
    lines.extend(queued_lines(queued))
    lines.extend(held_lines(waits, elements, held_elements))
    failed = list(failed)
    if failed:
        lines.append("tasks that failed during the run (a result they should have moved may be missing):")
        lines.extend("  " + task_failure(t) for t in failed)
    else:
        lines.append("no task failed: the calls above wait for tuples that no one will move "
                     "(check the templates, and that every move has its observe)")
    return "\n".join(lines)


def queued_lines(queued: Iterable[Mapping[str, Any]], most: int = 5) -> List[str]:
    """One line per task queued behind held slots: "t5 (work.py) is queued: every slot of
    w1 (2 of 2) is held by tasks waiting in PastSet" (after ``most`` of them, a count)."""
    queued = list(queued)
    lines = []
    for task in queued[:most]:
        holders = [f"{w['worker']} ({len(w.get('tasks', ()))} of {w['slots']})" for w in task.get("workers", ())]
        where = holders[-1] if len(holders) == 1 else f"{', '.join(holders[:-1])} and {holders[-1]}"
        lines.append(f"  {task['id']} ({task.get('app')}) is queued: every slot of {where} is held by tasks "
                     "waiting in PastSet")
    if len(queued) > most:
        lines.append(f"  ... and {len(queued) - most} more queued tasks")
    return lines


def _label(name: str, view: Mapping[str, Any]) -> str:
    """How the report names participant ``name`` (the app, or a task with where it runs)."""
    if name == APP:
        return APP
    for task in view.get("activity", {}).get("running", ()):
        if task.get("id") == name:
            return Caller(kind="task", task=name, application=task.get("app"), worker=task.get("worker"),
                          host=task.get("host")).label()
    return f"task {name}"


def report(verdict: Verdict, view: Mapping[str, Any], aborting: bool = True, stopping: str = STOPPING) -> str:
    """:func:`format_report` for ``verdict`` and the view it was decided on."""
    blocked = [(_label(name, view), count) for name, count in sorted(verdict.blocked.items(),
                                                                      key=lambda i: (i[0] != APP, i[0]))]
    return format_report(verdict.waits, view.get("elements", {}), view.get("failed", []), verdict.held,
                         aborting=aborting, stopping=stopping, blocked=blocked, doubts=verdict.doubts,
                         held_elements=view.get("held", ()), queued=verdict.queued)


def failure_summary(failed: Iterable[Mapping[str, Any]], total: int) -> Optional[str]:
    """The run's last stderr lines when tasks failed ("N of M tasks failed:" and which), or None."""
    failed = list(failed)
    if not failed:
        return None
    noun = "task" if total == 1 else "tasks"
    lines = [f"pastset: {len(failed)} of {total} {noun} failed:"]
    lines.extend("  " + task_failure(t) for t in failed)
    return "\n".join(lines)
