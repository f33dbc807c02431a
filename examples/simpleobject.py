"""Python objects as values: an instance of a class defined right here moves and comes back.

Run it with:  python -m pastset run --bin examples simpleobject.py

The server never unpickles ordinary tuples — they rest as the client pickled them —
so the class need not exist on the server; only the observer must know it (here it is
the same program). The original had to pickle by hand; that still works too. Prints
``0 1``, ``1 1``, the object's greeting and what kind of object came back.
"""
import pickle

import pastset


class Greeting:
    """A small class that lives only in this program's ``__main__``."""

    def __init__(self, text):
        self.text = text

    def show(self):
        print(self.text)


pset = pastset.PastSet()
# The template only says "some object": a template is sent to the server, which does
# not know Greeting, so classes of __main__ belong in values, not in templates.
objects = pset.enter(("Object", object))

objects.move(("Object", Greeting("Hello world...")))
print(objects.first(), objects.last())
_, greeting = objects.observe()
print(objects.first(), objects.last())
greeting.show()
print(f"came back as {type(greeting).__module__}.{type(greeting).__qualname__}")

# The original's way, by hand: the tuple holds pickled bytes.
pickled = pset.enter(("Pickled", bytes))
pickled.move(("Pickled", pickle.dumps(Greeting("Hello again, by hand..."))))
pickle.loads(pickled.observe()[1]).show()

pset.halt()
