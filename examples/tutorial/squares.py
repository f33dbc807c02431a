"""The tutorial's program: a producer, two spawned tasks, a bounded element and a result.

Run it from this directory:  python -m pastset run --procs 2 squares.py 10

It hands the numbers below COUNT to two square.py tasks through the bounded element
("jobs", int), adds up the squares they move into ("squares", int, int), and waits for
both tasks to end. An optional second argument names another task file.
"""
import sys

import pastset

count = int(sys.argv[1])  # the app's own arguments are strings, as in any Python program
task_file = sys.argv[2] if len(sys.argv) > 2 else "square.py"

pset = pastset.PastSet()
jobs = pset.enter(("jobs", int))
jobs.delta(3)  # at most 3 unobserved jobs: a fourth move waits until a task takes one
results = pset.enter(("squares", int, int))

tasks = [pset.spawn(task_file, [name, 0.05]) for name in ("left", "right")]
for n in range(count):
    jobs.move((n,))
for _ in tasks:
    jobs.move((-1,))  # one "stop" for each task

total = sum(results.observe()[1] for _ in range(count))
print("sum of the squares below", count, "=", total)
for task in tasks:
    print(task.id, "ended with exit code", task.wait())
