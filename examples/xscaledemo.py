"""Demo of the ``xscale`` X-function: Celsius readings go in, Fahrenheit come out.

Run it with:  python -m pastset run --bin examples xscaledemo.py

It moves a few Celsius readings into an element served by ``xscale.py`` and prints
what an observer gets back, e.g. ``body: 37.0 C -> 98.6 F``.
"""
import pastset

readings = [("freezing", 0.0), ("boiling", 100.0), ("crossover", -40.0), ("body", 37.0)]

pset = pastset.PastSet()
temperatures = pset.enter(("Temperature", str, float), "xscale")
for name, celsius in readings:
    temperatures.move(("Temperature", name, celsius))
for _name, celsius in readings:
    _, observed_name, fahrenheit = temperatures.observe()
    print(f"{observed_name}: {celsius} C -> {fahrenheit} F")
pset.halt()
