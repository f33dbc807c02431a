"""Spawning tasks with arguments: every argument arrives in the task's ``sys.argv`` as a string.

Run it with:  python -m pastset run --procs 2 --bin examples spawntest.py [N]

It spawns ``spawnclient.py`` with a single string, with a tuple, with an argument
holding a space, and with growing lists ``test 0``, ``test 0 1`` ... up to N numbers
(default 10). Each client reports the arguments it got; this program prints them
sorted, one line per task (``task got: [...]``), then ``N tasks reported`` and halts.
"""
import sys

import pastset

count = int(sys.argv[1]) if sys.argv[1:] and sys.argv[1].isdigit() else 10

pset = pastset.PastSet()
reports = pset.enter(("spawn-args", str))

expected = 0
pset.spawn("spawnclient.py", "test")             # a str is one argument
pset.spawn("spawnclient.py", ("test", -1))       # every item is str()'d
pset.spawn("spawnclient.py", ["hello world", ""])  # spaces and empty strings survive
expected += 3
param = ["test"]
for i in range(count):
    param.append(i)
    pset.spawn("spawnclient.py", param)
    expected += 1

got = sorted(reports.observe()[1] for _ in range(expected))
for line in got:
    print(f"task got: {line}")
print(f"{expected} tasks reported")
pset.halt()
