"""Spawned by ``spawntest.py``: prints and reports the arguments it was started with.

Not run by hand. It prints ``len(sys.argv)`` and ``sys.argv`` like the original (the
run shows a task's output on its own stdout) and moves ``("spawn-args", repr(args))``
so ``spawntest.py`` can check every argument arrived intact.
"""
import sys

import pastset

print(len(sys.argv))
print(sys.argv)
pset = pastset.PastSet()
pset.enter(("spawn-args", str)).move(("spawn-args", repr(sys.argv[1:])))
