"""``pastset top`` in a real terminal (tmux): full-screen frames that fit, Ctrl-C, the run ending."""
from __future__ import annotations

import os
import re
import sys
import textwrap

import pytest

from .tmux import Tmux
from helpers.components import require
from helpers.paths import TESTS
from helpers.polling import wait_until

pytestmark = pytest.mark.integration


# The loop with a fake fetch: a status document that changes every frame, until ``frames``
# frames were shown (then the fetch says the run ended) or Ctrl-C.
SCRIPT = textwrap.dedent("""
    import os
    import sys
    sys.path.insert(0, {tests!r})
    from pastset.errors import ConnectError
    from pastset.observe.top import run_top
    from helpers.statussample import sample_doc

    frames = int(sys.argv[1])
    shown = []

    def fetch():
        if len(shown) >= frames:
            raise ConnectError("cannot reach the server")
        shown.append(1)
        doc = sample_doc()
        doc["tasks"] = doc["tasks"] * 30  # more rows than the terminal has
        doc["queued"] = len(shown)
        return doc

    code = run_top(fetch, interval=0.2)
    with open(sys.argv[2] + ".part", "w") as f:  # renamed when whole: the test waits for the name
        f.write(str(code))
    os.replace(sys.argv[2] + ".part", sys.argv[2])
""")


def frames_shown(screen: list) -> int:
    """The frame number the fake fetch put in the headline ("N queued"), 0 if none is shown."""
    found = [re.search(r"(\d+) queued", line) for line in screen]
    return max((int(m.group(1)) for m in found if m), default=0)


@pytest.fixture
def top_in_tmux(tmp_path):
    require("tmux", "tmux is not installed (apt-get install tmux)")
    sessions = []

    def start(frames: int):
        script, result = tmp_path / "top.py", tmp_path / "exit-code"
        script.write_text(SCRIPT.format(tests=str(TESTS)))
        env = f"PYTHONPATH={os.environ.get('PYTHONPATH', '')}"
        tmux = Tmux(tmp_path, f"env {env} {sys.executable} {script} {frames} {result}; sleep 60")
        sessions.append(tmux)
        return tmux, result

    yield start
    for tmux in sessions:
        tmux.close()


def test_top_fills_the_terminal_and_ctrl_c_restores_it(top_in_tmux):
    tmux, result = top_in_tmux(frames=10 ** 6)
    assert wait_until(lambda: any(line.startswith("pastset top") for line in tmux.screen()), 20, 0.1), \
        tmux.screen()
    assert wait_until(lambda: frames_shown(tmux.screen()) >= 3, 20, 0.1), f"the frame is not redrawn: {tmux.screen()}"
    screen = tmux.screen()
    assert len(screen) <= 25 and all(len(line) <= 90 for line in screen)
    assert screen[0].startswith("pastset top")
    assert "('work', str)" in "\n".join(screen)
    assert any("more" in line for line in screen)  # the 60 tasks did not fit
    tmux.run("send-keys", "C-c")
    assert wait_until(result.exists, 20, 0.1), tmux.screen()
    assert result.read_text() == "0"
    # back on the main screen: the frame is gone
    assert not any(line.startswith("pastset top ") for line in tmux.screen())


def test_top_exits_0_when_the_run_ends(top_in_tmux):
    tmux, result = top_in_tmux(frames=3)
    assert wait_until(result.exists, 20, 0.1), tmux.screen()
    assert result.read_text() == "0"
    assert any("the run has ended" in line for line in tmux.screen())
