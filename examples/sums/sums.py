"""The deadlock example of docs/running.md: two sum.py tasks should each move a sum, but crash.

Run it from this directory:  python -m pastset run --procs 2 --label-output true sums.py
"""
import pastset

pset = pastset.PastSet()
results = pset.enter(("sum", int))
for n in (10, 20):
    pset.spawn("sum.py", [n])
print("total:", sum(results.observe()[1] for _ in range(2)))
