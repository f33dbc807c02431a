"""A task of sums.py with a bug: it crashes before it moves the sum below N."""
import sys

import pastset

n = int(sys.argv[1])
results = pastset.PastSet().enter(("sum", int))
results.move(("sum", sum(range(n)) / 0))
