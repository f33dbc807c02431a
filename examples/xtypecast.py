"""X-function: strict templates — tuples are checked against the template and cast to its types.

Not a program: an X-function module, selected with
``pset.enter(("Strict", int, float, str), "xtypecast")`` and imported by the server from
the run's ``bin`` directory. The default element is loose (it stores whatever it is
given, as the original did); this one refuses a move unless the tuple fits:

* it must have as many fields as the template;
* a tag field (a value in the template, like ``"Strict"``) must equal the tag;
* an ``int`` field takes an int, or a string of one (``"123"`` becomes ``123``);
* a ``float`` field takes an int or a float, or a string of one;
* a ``str`` field takes only a str (anything can be turned into a string, so casting
  would check nothing);
* any other type field takes only an instance of that type.

A refused move raises in the mover as ``pastset.XFunctionError`` naming the field.
See ``xtemplatelimits.py``.
"""
import pastset.element


def cast_field(position, wanted, value):
    """``value`` cast to the template entry ``wanted``, or a TypeError/ValueError saying why not."""
    if not isinstance(wanted, type):  # a tag
        if value != wanted:
            raise ValueError(f"field {position} must be the tag {wanted!r}, not {value!r}")
        return value
    if isinstance(value, bool) and wanted is not bool:
        raise TypeError(f"field {position} must be {wanted.__name__}, not bool {value!r}")
    if wanted is int:
        if isinstance(value, int):
            return value
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
        raise TypeError(f"field {position} must be an int or a string of one, not {value!r}")
    if wanted is float:
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise TypeError(f"field {position} must be a float or a string of one, not {value!r}")
    if not isinstance(value, wanted):
        raise TypeError(f"field {position} must be {wanted.__name__}, not {type(value).__name__} {value!r}")
    return value


class Element(pastset.element.Element):
    """An element that only takes tuples matching its template (cast where safe)."""

    def move(self, data):
        template = self.template()
        if not isinstance(data, tuple) or len(data) != len(template):
            size = len(data) if isinstance(data, tuple) else type(data).__name__
            raise ValueError(f"the template {template!r} has {len(template)} fields, the tuple {size}")
        return super().move(tuple(cast_field(i, t, v) for i, (t, v) in enumerate(zip(template, data))))
