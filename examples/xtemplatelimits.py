"""Loose versus strict templates: the default element against the ``xtypecast`` X-function.

Run it with:  python -m pastset run --bin examples xtemplatelimits.py

For each payload it moves ``("Loose", *payload)`` into a default element and
``("Strict", *payload)`` into one served by ``xtypecast.py``, then observes each. The
loose element silently stores everything (templates are not enforced, as in the
original); the strict one casts the first two payloads and refuses all the others.
The last line counts what each side accepted.
"""
import pastset

payloads = [
    [123, 42.42, "abc"],          # fits as it is
    ["123", "42.42", "abc"],      # strings of numbers: cast to int and float
    [123],                        # too short
    [123, 42.42, "abc", "def"],   # too long
    ["abc", 42.42, "abc"],        # not an int
    [123, "abc", "def"],          # not a float
    [123, 42.42, b"abc"],         # bytes are not a str
    [id, 42.42, "abc"],           # a function is not an int
]

pset = pastset.PastSet()
loose = pset.enter(("Loose", int, float, str))
strict = pset.enter(("Strict", int, float, str), "xtypecast")
accepted = {"loose": 0, "strict": 0}

for payload in payloads:
    print(f"compare loose and strict handling of payload: {payload}")
    for name, element, tag in (("loose", loose, "Loose"), ("strict", strict, "Strict")):
        try:
            element.move(tuple([tag] + payload))
        except pastset.XFunctionError as exc:
            print(f"  {name} handling failed: {exc}")
        else:
            print(f"  {name} content observed: {element.observe()}")
            accepted[name] += 1

print(f"loose accepted {accepted['loose']} of {len(payloads)}, strict accepted {accepted['strict']} of {len(payloads)}")
pset.halt()
