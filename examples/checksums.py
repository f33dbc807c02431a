"""A real bag of tasks: the SHA-256 checksum of every file under a directory, by N workers.

Run it with:  python -m pastset run --procs 4 --bin examples checksums.py DIR [options]

Options:
  --tasks N   spawned checksum tasks (default: 4)
  --verify    also checksum every file here, serially, and compare
  --list      print ``sha256  path`` lines (the ``sha256sum`` format) for every file

The program walks DIR, moves one job per file (its absolute path) into the
("checksum-jobs", str) element, spawns N copies of itself with ``--task``, and collects
one ("checksum-results", ...) tuple per file. Each task takes jobs until it gets the
empty path, which the program moves N times at the end so every task finishes on its
own. It prints a summary::

    checksummed 120 files, 48.2 MiB in 0.9 s (53.6 MiB/s) with 4 tasks
      t1 on node1: 31 files, 12.1 MiB
      ...

With ``--verify`` it ends with ``verified: all 120 checksums match`` (or lists the
mismatches and exits 1). Workers on other hosts must see DIR at the same path.
"""
import argparse
import hashlib
import os
import socket
import sys
import time

import pastset

JOBS = ("checksum-jobs", str)
#: (tag, path, sha256 hex or "" on error, size, who, error message)
RESULTS = ("checksum-results", str, str, int, str, str)


def sha256_of(path):
    """The hex SHA-256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def files_under(top):
    """Every regular file under ``top`` (symlinks are not followed), sorted."""
    found = []
    for root, dirs, names in os.walk(top):
        dirs.sort()
        for name in names:
            path = os.path.join(root, name)
            if os.path.isfile(path) and not os.path.islink(path):
                found.append(path)
    return sorted(found)


def task():
    """A spawned task: checksum files until the empty path says stop."""
    pset = pastset.PastSet()
    jobs, results = pset.enter(JOBS), pset.enter(RESULTS)
    me = f"{os.environ.get('PASTSET_TASK', 'task')} on {socket.gethostname()}"
    while True:
        (_, path) = jobs.observe()
        if not path:
            break
        try:
            results.move(("checksum-results", path, sha256_of(path), os.path.getsize(path), me, ""))
        except OSError as exc:  # unreadable, or gone since the walk: report, do not die
            results.move(("checksum-results", path, "", 0, me, f"{type(exc).__name__}: {exc.strerror or exc}"))
    pset.close()


def mib(size):
    return f"{size / 2**20:.1f} MiB"


def main(argv):
    parser = argparse.ArgumentParser(prog="checksums.py", description="SHA-256 of every file under DIR.")
    parser.add_argument("dir", metavar="DIR", nargs="?")
    parser.add_argument("--tasks", type=int, default=4, help="checksum tasks to spawn (default 4)")
    parser.add_argument("--verify", action="store_true", help="compare against a serial computation")
    parser.add_argument("--list", action="store_true", help="print 'sha256  path' for every file")
    parser.add_argument("--task", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.task:
        return task()
    if args.dir is None or not os.path.isdir(args.dir):
        parser.error(f"DIR must be a directory, not {args.dir!r}")
    if args.tasks < 1:
        parser.error("--tasks must be at least 1")

    paths = files_under(os.path.abspath(args.dir))
    pset = pastset.PastSet()
    jobs, results = pset.enter(JOBS), pset.enter(RESULTS)

    started = time.monotonic()
    for _ in range(args.tasks):
        pset.spawn("checksums.py", ["--task"])
    # one round trip for all jobs, then one "stop" per task
    jobs.move_many([("checksum-jobs", path) for path in paths] + [("checksum-jobs", "")] * args.tasks)
    pset.halt()  # no more tasks: workers finish once theirs end

    digests, errors, per_task = {}, {}, {}
    total = 0
    for _ in paths:
        _, path, digest, size, who, error = results.observe()
        files, size_sum = per_task.get(who, (0, 0))
        per_task[who] = (files + 1, size_sum + size)
        if error:
            errors[path] = error
        else:
            digests[path] = digest
            total += size
    took = time.monotonic() - started

    if args.list:
        for path in paths:
            if path in digests:
                print(f"{digests[path]}  {path}")
    rate = f" ({mib(total / took)}/s)" if took > 0 else ""
    print(f"checksummed {len(digests)} files, {mib(total)} in {took:.2f} s{rate} with {args.tasks} tasks")
    for who, (files, size) in sorted(per_task.items()):
        print(f"  {who}: {files} files, {mib(size)}")
    for path, error in sorted(errors.items()):
        print(f"  could not read {path}: {error}")

    status = 1 if errors else 0
    if args.verify:
        wrong = [p for p in paths if p in digests and sha256_of(p) != digests[p]]
        for path in wrong:
            print(f"  MISMATCH {path}")
        if wrong:
            status = 1
        else:
            print(f"verified: all {len(digests)} checksums match")
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
