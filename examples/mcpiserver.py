"""Monte Carlo pi, the server side: a bag of tasks shared by spawned clients.

Run it with:  python -m pastset run --procs 4 --bin examples mcpiserver.py 4 10 1000000

Arguments (all optional): WORKERS clients to spawn (default 2), BAGS of work
(default 10) and BAGSIZE darts per bag (default 100000). It fills the ("pi-jobs", int)
element with the bags, spawns ``mcpiclient.py`` WORKERS times, averages the BAGS
results and prints, like the original::

    Pi is found as 3.141791 with 4 worker(s), 10 bag(s) and bagsize of 1000000

Before that it prints one ``mcpiclient on <hostname> (<worker id>)`` line per client,
so you can see where the work ran. Then it halts; the clients, still waiting for more
bags, are stopped by the run.
"""
import sys

import pastset


def arguments(argv):
    """WORKERS, BAGS, BAGSIZE from the command line; missing or non-numeric ones keep their default."""
    values = [2, 10, 100000]
    for i, text in enumerate(argv[:3]):
        if text.isdigit() and int(text) > 0:
            values[i] = int(text)
    return values


def main():
    workers, bags, bagsize = arguments(sys.argv[1:])
    pset = pastset.PastSet()
    jobs = pset.enter(("pi-jobs", int))
    results = pset.enter(("pi-results", float))
    nodes = pset.enter(("pi-node", str))

    jobs.move_many([(bagsize,)] * bags)  # all bags in one round trip
    for _ in range(workers):
        pset.spawn("mcpiclient.py", "")

    pi = sum(results.observe()[0] for _ in range(bags)) / bags

    # Every spawned client reports its node when it starts; a client that never got a
    # bag may report late, so wait a little for each, then carry on without it.
    where = []
    for _ in range(workers):
        try:
            where.append(nodes.observe(timeout=30)[1])
        except pastset.Timeout:
            where.append("(never started)")
    for node in sorted(where):
        print(f"mcpiclient on {node}")

    print("Pi is found as %f with %d worker(s), %d bag(s) and bagsize of %d" % (pi, workers, bags, bagsize))
    pset.halt()


if __name__ == "__main__":
    main()
