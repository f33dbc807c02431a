"""A task for ``run_from_python.py`` and ``run_from_python.ipynb``: squares numbers.

Not run by hand. It takes numbers from the ("square-jobs", int) element until it gets a
negative one, prints a line for each (the run shows task output, labelled ``[TASKID]``
when labels are on) and moves ``(n, n * n)`` to ("squares", int, int).
"""
import pastset

pset = pastset.PastSet()
jobs = pset.enter(("square-jobs", int))
squares = pset.enter(("squares", int, int))
while True:
    (n,) = jobs.observe()
    if n < 0:
        break
    print(f"squaring {n}", flush=True)  # a task's stdout is a pipe: flush to show it now
    squares.move((n, n * n))
