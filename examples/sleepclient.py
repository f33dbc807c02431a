"""Spawned by ``sleepserver.py``: sleeps as told, forever (the run stops it).

Not run by hand. Takes ``(seconds,)`` from ("sleep-jobs", float), sleeps that long
and moves ``("sleep-results", "<task id> on <hostname>")``.
"""
import os
import socket
import time

import pastset

pset = pastset.PastSet()
jobs = pset.enter(("sleep-jobs", float))
results = pset.enter(("sleep-results", str))
me = f"{os.environ.get('PASTSET_TASK', 'task ?')} on {socket.gethostname()}"
while True:
    (seconds,) = jobs.observe()
    time.sleep(seconds)
    results.move(("sleep-results", me))
