"""The tutorial's first program: one element, one tuple moved in and observed back.

Run it from this directory:  python -m pastset run first.py
"""
import pastset

pset = pastset.PastSet()  # inside a run: finds the run's server by itself
greetings = pset.enter(("greeting", str))  # the template names the element
greetings.move(("hello", "world"))
print(greetings.first(), greetings.last())  # nobody has observed tuple 0; 1 tuple moved
print(greetings.observe())
print(greetings.first(), greetings.last())
