"""The smallest PastSet program: move one tuple into an element and observe it back.

Run it with:  python -m pastset run --bin examples simple.py

It prints ``0 1`` (nothing observed yet, one tuple moved), the tuple, and ``1 1``
(the tuple was observed), exactly like the original pyPastSet example.
"""
import pastset

pset = pastset.PastSet()  # finds the run through PASTSET_ADDRESS / PASTSET_AUTHKEY

# The template names the element: a tag and the types of the values that follow it.
test = pset.enter(("Test", int, float))
test.move((42, 3.14))
print(test.first(), test.last())
print(test.observe())
print(test.first(), test.last())

pset.halt()  # no tasks will be spawned: the workers may finish
