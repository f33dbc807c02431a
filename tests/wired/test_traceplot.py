"""``pastset trace-plot`` where matplotlib is missing (it is an optional extra): the error says how to
install it."""
from __future__ import annotations

import subprocess
import sys
import textwrap

from helpers.traces import write_sample_trace


def test_without_matplotlib_the_error_says_how_to_install_it(tmp_path):
    write_sample_trace(tmp_path / "run.json")
    code = textwrap.dedent(f"""
        import sys
        sys.modules["matplotlib"] = None  # as if it were not installed
        from pastset.observe import traceplot
        from pastset.errors import PastSetError
        try:
            traceplot.plot({str(tmp_path / "run.json")!r}, {str(tmp_path / "x.png")!r})
        except PastSetError as exc:
            print(exc)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "pip install 'pastset[plot]'" in out.stdout, out.stderr
