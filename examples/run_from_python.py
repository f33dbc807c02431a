"""A run started from Python: this script is the app, ``pastset.Run`` does the rest.

Run it with:  python examples/run_from_python.py

``pastset.Run(procs=2, bin=...)`` starts what ``pastset run`` would (the server, two
workers) and returns; the script then spawns tasks, hands them work and collects the
results. Leaving the ``with`` block stops the tasks, the workers and the server, and
sums up the tasks that failed (here, none).
"""
import os

import pastset

HERE = os.path.dirname(os.path.abspath(__file__))

with pastset.Run(procs=2, bin=HERE) as run:  # settings by their pastset.toml names
    print("run", run.id, "at", "%s:%d" % run.address)
    pset = run.pastset()
    jobs = pset.enter(("square-jobs", int))
    squares = pset.enter(("squares", int, int))
    for _ in range(2):
        pset.spawn("squarer.py")
    jobs.move_many([(n,) for n in range(10)] + [(-1,), (-1,)])  # -1: "stop", once per task
    results = dict(squares.observe() for _ in range(10))
    print("squares:", [results[n] for n in range(10)])
    workers = run.status()["workers"]
    print("workers:", len(workers))

print("failed tasks:", run.failed_tasks)
