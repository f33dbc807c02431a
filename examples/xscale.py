"""X-function: transform values on their way in — here, Celsius readings stored as Fahrenheit.

Not a program: an X-function module, selected with
``pset.enter(("Temperature", str, float), "xscale")`` and imported by the server from
the run's ``bin`` directory. Every number in a moved tuple (not the tag, not bools)
is stored as ``value * SCALE + OFFSET``, so every observer sees the converted value
without knowing a conversion happened. Change ``SCALE``/``OFFSET`` (or subclass) for
other linear conversions: km to m is ``SCALE = 1000.0, OFFSET = 0.0``.
See ``xscaledemo.py``.
"""
import pastset.element


class Element(pastset.element.Element):
    """An element that stores numbers converted by ``value * SCALE + OFFSET``."""

    SCALE = 1.8
    OFFSET = 32.0

    def convert(self, value):
        """The stored form of one field: numbers are converted, anything else kept."""
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return round(value * self.SCALE + self.OFFSET, 9)  # 37 C is 98.6 F, not 98.60000000000001
        return value

    def move(self, data):
        return super().move(tuple(self.convert(v) for v in data))
