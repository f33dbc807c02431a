"""The status document: what ``pastset status --json`` prints and ``PastSet.status()`` returns.

One plain dict (JSON types only), built on the server (:mod:`pastset.server.status`) from
the scheduler's snapshot, the space's elements, the waits and the flow counters. Its keys are
stable: :data:`KEYS` lists them all, and a test pins that list. ``schema`` says which
version of the document this is (:data:`SCHEMA`): a version adds keys, never renames or
drops one, so a reader written for an older version keeps working. A document without
``schema`` is version 1.

The ``runner`` section is what only the runner knows (the app, the launcher, the run's
phase, its deadlock detection): the server leaves it null, ``pastset status`` fills what
the run's record says, and the run's dashboard fills it all (:func:`runner_section`).

=====================  =====================================================================
key                    meaning
=====================  =====================================================================
``schema``             version of this document's layout: 3 (2 had no worker ``slots``,
                       ``slots_used``; 1 had no ``schema``, ``runner``)
``run``                the run's id
``version``            pastset version of the server
``pid``                the server's process id
``time``               when the status was taken (seconds since the epoch)
``halted``             ``halt()`` was called: workers take no more tasks
``queued``             tasks spawned but not yet handed to a worker
``elements``           list, one per element:
  ``id``               element id
  ``template``         the template as written in the program: ``('work', str)``
  ``xfunction``        the X-function as given to ``enter()`` (``xscale``), or null
  ``first``            number of the oldest tuple nobody has observed yet
  ``last``             number of tuples moved so far
  ``unobserved``       ``last - first``
  ``delta``            the bound on unobserved tuples, or null
  ``moves``            moves so far (cumulative)
  ``observes``         observes so far, indexed ones included (cumulative)
  ``moves_per_s``      moves per second over about the last 5 s (a first status: since the element was seen)
  ``observes_per_s``   observes per second, the same way
  ``waiting``          list of the calls waiting on this element now (see ``waits``)
``waits``              list, every call waiting now, oldest first:
  ``who``              a phrase: ``app``, ``task t3 (sum.py on w1@node2)``, ``worker w1@node2``
  ``caller``           ``{kind, task, application, worker, host, pid, thread}`` (kind: app,
                       task, worker, client; thread: the caller's native thread id;
                       unknown fields null)
  ``operation``        ``observe``, ``observe index N``, ``move (blocked by delta K)``,
                       ``move (queued behind blocked moves)``, ``move_many (blocked by delta K)``,
                       ``observe_many``, ``wait task tN (APP)``, ``next_task`` ...; a call
                       running an element's X-function is listed while that code runs
  ``element``          element id, or null for calls not on an element
  ``template``         that element's template as written, or null
  ``timeout``          the call's timeout in seconds, or null when it waits without one
  ``waited_s``         seconds it has waited so far
``tasks``              list, one per spawned task:
  ``id``               task id (``t1`` ...)
  ``application``      the program the task runs
  ``args``             its arguments
  ``state``            queued, assigned (handed to a worker, not started yet), running,
                       done, failed or lost
  ``worker``           id of the worker it went to, or null
  ``host``             that worker's host, or null
  ``pid``              the task's process id on that host, or null
  ``returncode``       exit code once it ended, or null
  ``error``            why it failed to run or was stopped, or null
  ``spawned``          when it was spawned (epoch seconds)
  ``started``          when it started, or null
  ``ended``            when it ended, or null
  ``run_time``         seconds run so far (or in all, once ended), or null if not started
``workers``            list, one per registered worker:
  ``id``               worker id (``w1`` ...)
  ``host``             host name
  ``system``/``arch``  operating system and machine
  ``cores``            CPU cores
  ``memory_mb``        memory
  ``disk_mb``          free disk in the run's directory
  ``benchmark``        a quick CPU score (higher is faster)
  ``pid``              the worker's process id on its host
  ``task_start``       how its tasks start: ``fork server`` (forked from a process that
                       has imported pastset: milliseconds) or ``fresh interpreter`` (``python
                       APP``, when the ``python`` setting names another interpreter)
  ``state``            idle, busy, halted, exited or lost
  ``running``          ids of the tasks it is running now
  ``slots``            how many tasks it may hold at once (the run's ``slots``; 0: no bound)
  ``slots_used``       how many it holds now: running, or handed to it and starting
  ``done``/``failed``  how many of its tasks ended well / badly
``runner``             what the runner knows, or null (from a server's ``status`` call):
  ``app``              the application as given to ``pastset run``
  ``args``             its arguments
  ``launcher``         the launcher that started the workers
  ``started``          when the run started (epoch seconds)
  ``phase``            starting (workers registering), running (the app runs), stopping
                       (teardown), or null when not known
  ``deadlock``         deadlock detection now, or null before the app runs or when not known:
    ``state``          moving (something can still move: ``reason`` says what), stuck
                       (everything waits; a deadlock once that lasts ``grace`` s), deadlock
    ``stuck_s``        seconds everything has waited so far, or null while moving
    ``grace``          the ``deadlock_grace`` setting (seconds)
    ``reason``         why it is not a deadlock (while moving), or null
  ``trace``            the trace file this run writes, or null
=====================  =====================================================================
"""
from __future__ import annotations

from typing import Any, Dict, Mapping, Optional, Sequence

#: the version of the document's layout that this pastset writes (the ``schema`` key)
SCHEMA = 3

#: every key of the document, per level: "" is the top level, the others name its lists and sections
KEYS: Dict[str, Sequence[str]] = {
    "": ("schema", "run", "version", "pid", "time", "halted", "queued", "elements", "waits", "tasks", "workers",
         "runner"),
    "elements": ("id", "template", "xfunction", "first", "last", "unobserved", "delta", "moves",
                 "observes", "moves_per_s", "observes_per_s", "waiting"),
    "waits": ("who", "caller", "operation", "element", "template", "timeout", "waited_s"),
    "caller": ("kind", "task", "application", "worker", "host", "pid", "thread"),
    "tasks": ("id", "application", "args", "state", "worker", "host", "pid", "returncode", "error",
              "spawned", "started", "ended", "run_time"),
    "workers": ("id", "host", "system", "arch", "cores", "memory_mb", "disk_mb", "benchmark", "pid",
                "task_start", "state", "running", "slots", "slots_used", "done", "failed"),
    "runner": ("app", "args", "launcher", "started", "phase", "deadlock", "trace"),
    "deadlock": ("state", "stuck_s", "grace", "reason"),
}

#: the run's phases as ``runner.phase`` names them
PHASES = ("starting", "running", "stopping")
#: the states of ``runner.deadlock.state``
DEADLOCK_STATES = ("moving", "stuck", "deadlock")


def runner_section(app: Optional[str], args: Sequence[str], launcher: Optional[str], started: Optional[float],
                   phase: Optional[str] = None, deadlock: Optional[Mapping[str, Any]] = None,
                   trace: Optional[str] = None) -> Dict[str, Any]:
    """The document's ``runner`` section, keys in :data:`KEYS` order (``deadlock`` too)."""
    if phase is not None and phase not in PHASES:
        raise ValueError(f"phase {phase!r} is not one of {', '.join(PHASES)}")
    shown_deadlock = None
    if deadlock is not None:
        if deadlock.get("state") not in DEADLOCK_STATES:
            raise ValueError(f"deadlock state {deadlock.get('state')!r} is not one of {', '.join(DEADLOCK_STATES)}")
        shown_deadlock = {key: deadlock.get(key) for key in KEYS["deadlock"]}
    return {"app": app, "args": list(args), "launcher": launcher, "started": started, "phase": phase,
            "deadlock": shown_deadlock, "trace": trace or None}
