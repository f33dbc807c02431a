"""A task of the tutorial's program: squares the jobs it observes until it sees -1.

squares.py spawns it twice, as ``square.py NAME PAUSE``.
"""
import sys
import time

import pastset

print("square.py got", sys.argv[1:])  # every argument arrives as a string
name, pause = sys.argv[1], float(sys.argv[2])

pset = pastset.PastSet()
jobs = pset.enter(("jobs", int))
results = pset.enter(("squares", int, int))
while True:
    (n,) = jobs.observe()  # each job goes to exactly one of the tasks
    if n < 0:
        break
    time.sleep(pause)  # the work
    results.move((n, n * n))
print(name, "is done")
