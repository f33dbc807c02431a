"""``pastset top`` in a real terminal (tmux) against a live run: a full-screen frame that
fits, showing the waiting calls and tasks; Ctrl-C exits 0 and restores the screen."""
from __future__ import annotations

import shlex

import pytest

from .tmux import Tmux
from helpers.components import require
from helpers.liveapp import live_app
from helpers.polling import wait_until
from helpers.runs import pastset_argv

pytestmark = pytest.mark.integration

WIDTH, HEIGHT = 140, 30


def test_top_in_a_terminal_shows_the_live_run_and_ctrl_c_exits_0(tmp_path):
    require("tmux", "tmux is not installed (apt-get install tmux)")
    result = tmp_path / "exit-code"
    with live_app(tmp_path) as (_, record, env):
        # the size comes from the terminal, not from COLUMNS/LINES the tmux server inherited
        names = ("PYTHONPATH", "PASTSET_RUNTIME_DIR", "PASTSET_CONFIG", "PASTSET_DISABLE_PLUGIN_AUTOLOAD")
        setting = " ".join(f"{name}={shlex.quote(env[name])}" for name in names)
        argv = " ".join(shlex.quote(a) for a in pastset_argv("top", "--run", record["run"], "--interval", "0.3"))
        command = f"env -u COLUMNS -u LINES {setting} {argv}; echo $? > {shlex.quote(str(result))}; sleep 60"
        tmux = Tmux(tmp_path, command, width=WIDTH, height=HEIGHT)
        try:
            text = lambda: "\n".join(tmux.screen())  # noqa: E731
            assert wait_until(lambda: "move (blocked by delta 1)" in text(), 20, 0.1), text()
            screen = tmux.screen()
            assert screen[0].startswith("pastset top") and f"run {record['run']}" in screen[1]
            assert len(screen) <= HEIGHT and all(len(line) <= WIDTH for line in screen)
            shown = "\n".join(screen)
            for needle in ("('bounded', int)", "('work', str)", "task t1 (observer.py on w", "running", "failed"):
                assert needle in shown, shown
            tmux.run("send-keys", "C-c")
            assert wait_until(result.exists, 20, 0.1), text()
            assert result.read_text().strip() == "0"
            assert not any(line.startswith("pastset top ") for line in tmux.screen())
        finally:
            tmux.close()
