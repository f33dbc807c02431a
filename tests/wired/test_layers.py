"""The package's layers in a real program: one that only uses the client loads no server-side
code."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

CLIENT_PROGRAM = textwrap.dedent("""
    import json, sys
    import pastset

    host, port, key = sys.argv[1], int(sys.argv[2]), bytes.fromhex(sys.stdin.readline().strip())
    with pastset.PastSet((host, port), authkey=key) as pset:
        e = pset.enter(("layers", int))
        e.move((1,))
        e.observe()
        e.move_many([(2,), (3,)])
        e.observe_many(2)
        e.first(), e.last(), e.delta(), e.template()
        task = pset.spawn("missing.py", ["a", 1])
        try:
            task.wait(timeout=0)
        except pastset.PastSetError:
            pass
        task.state
        pset.status()
    print(json.dumps(sorted(m for m in sys.modules if m.startswith("pastset"))))
""")


def test_a_client_program_loads_no_server_side_code(server_process):
    out = subprocess.run([sys.executable, "-c", CLIENT_PROGRAM, *map(str, server_process.address)],
                         input=server_process.authkey.hex() + "\n", capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    loaded = json.loads(out.stdout)
    assert "pastset.client.task" in loaded  # the program did spawn
    wrong = [m for m in loaded if m not in ("pastset", "pastset.errors")
             and not m.startswith(("pastset.client", "pastset.wire"))]
    assert not wrong, f"a client-only program loaded {wrong}"


def test_importing_pastset_and_connecting_loads_only_client_and_wire():
    program = textwrap.dedent("""
        import json, sys
        import pastset
        try:
            pastset.PastSet(("127.0.0.1", 1), authkey=b"k", connect_timeout=0.5)
        except pastset.ConnectError:
            pass
        print(json.dumps(sorted(m for m in sys.modules if m.startswith("pastset"))))
    """)
    out = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    loaded = json.loads(out.stdout)
    wrong = [m for m in loaded if m not in ("pastset", "pastset.errors")
             and not m.startswith(("pastset.client", "pastset.wire"))]
    assert not wrong, f"a client-only program loaded {wrong}"
