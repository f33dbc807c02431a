"""square.py with a slip: it moves its results into ("square", int, int).

The tutorial runs it as ``squares.py 10 square_typo.py`` to show a deadlock report.
"""
import sys
import time

import pastset

print("square.py got", sys.argv[1:])  # every argument arrives as a string
name, pause = sys.argv[1], float(sys.argv[2])

pset = pastset.PastSet()
jobs = pset.enter(("jobs", int))
results = pset.enter(("square", int, int))  # a slip: the app waits on "squares"
while True:
    (n,) = jobs.observe()  # each job goes to exactly one of the tasks
    if n < 0:
        break
    time.sleep(pause)  # the work
    results.move((n, n * n))
print(name, "is done")
