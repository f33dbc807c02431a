"""Demo of the ``xtimestamp`` X-function: the server stamps tuples as they move and are observed.

Run it with:  python -m pastset run --bin examples xtimestampdemo.py

It moves three tuples into an element served by ``xtimestamp.py``, observes them,
prints each with its time in the element, then re-reads one by number to show the
stored tuple kept both stamps. It ends with ``timestamps ok`` when the stamps are
consistent (moved <= observed, and the re-read tuple equals the observed one).
"""
import time

import pastset

pset = pastset.PastSet()
stamped = pset.enter(("Stamped", int, str), "xtimestamp")

for number, word in enumerate(["alpha", "beta", "gamma"]):
    stamped.move(("Stamped", number, word))
    time.sleep(0.01)

ok = True
observed = []
for _ in range(3):
    tag, number, word, moved_at, observed_at = stamped.observe()
    observed.append((tag, number, word, moved_at, observed_at))
    waited = (observed_at - moved_at) * 1000
    print(f"{tag} {number} {word}: moved {time.strftime('%H:%M:%S', time.localtime(moved_at))}, "
          f"observed {waited:.1f} ms later")
    ok = ok and moved_at <= observed_at

again = stamped.observe(1)  # an indexed read: the stored tuple, both stamps included
print(f"tuple 1 re-read: {again[:3]} with {len(again) - 3} timestamps")
ok = ok and again == observed[1]
print("timestamps ok" if ok else "timestamps WRONG")
pset.halt()
