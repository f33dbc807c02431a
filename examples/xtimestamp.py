"""X-function: stamp every tuple with the time it was moved and the time it was observed.

Not a program: an X-function module. An application selects it by name when it
enters an element::

    stamped = pset.enter(("Stamped", int, str), "xtimestamp")

and the server imports it from the run's ``bin`` directory (PSBIN). A tuple moved as
``(tag, ...)`` is stored as ``(tag, ..., moved_at)``; the first unindexed observe
appends ``observed_at`` and stores that back, so re-reading the tuple by number later
shows both times. See ``xtimestampdemo.py``.

Like the original it writes the observed tuple back with the base class's private
``__set_entry`` — it works because this class is also named ``Element``.
"""
import time

import pastset.element


class Element(pastset.element.Element):
    """An element whose tuples carry the time they were moved and first observed."""

    def move(self, data):
        return super().move(tuple(data) + (time.time(),))

    def observe(self, index):
        data = super().observe(index)
        if index == -1:  # taken for the first time: record when
            data = tuple(data) + (time.time(),)
            self.__set_entry(self.first() - 1, data)
        return data
