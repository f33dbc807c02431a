"""A launcher plugin a test registers inline on a fresh plugin manager (never autoloaded):
workers as local children, and a diary of what the run asked of it."""
from __future__ import annotations

import contextlib
import subprocess
import sys
from typing import Iterator, List

import pluggy

import pastset
from pastset.launch.launcher import Launcher, WorkerLaunch, text_option
from pastset.launch.plugins import make_plugin_manager
from pastset.launch.processes import start_child, stop_child


class InlineLauncher(Launcher):
    """Workers as local children, and a diary of what the run asked for."""

    name = "inline"
    summary = "test launcher registered inline"
    option_specs = (text_option("label", "a word the diary shows", "none"),)
    calls: List[str] = []

    def __init__(self, settings, options=None):
        super().__init__(settings, options)
        self.procs: List[subprocess.Popen] = []
        InlineLauncher.calls.append(f"init label={self.options['label']}")

    def start(self, launch: WorkerLaunch) -> None:
        InlineLauncher.calls.append(f"start {launch.count}")
        argv = launch.worker_argv([sys.executable])
        assert launch.authkey.hex() not in " ".join(argv)  # the authkey never reaches argv
        for _ in range(launch.count):
            self.procs.append(start_child(argv, env=launch.worker_env(), stdin=subprocess.DEVNULL))

    def pending(self):
        return [f"inline pid {p.pid}" for p in self.procs if p.poll() is None]

    def stop(self, grace: float = 2.0) -> None:
        InlineLauncher.calls.append("stop")
        for proc in self.procs:
            stop_child(proc, grace)


class InlinePlugin:
    @pastset.hookimpl
    def pastset_register_launchers(self, register):
        register(InlineLauncher)


@contextlib.contextmanager
def inline_plugin_manager() -> Iterator[pluggy.PluginManager]:
    """A plugin manager with the built-ins and :class:`InlinePlugin` (as
    ``inline-test-plugin``), the diary empty; the plugin is unregistered afterwards."""
    InlineLauncher.calls = []
    manager = make_plugin_manager(autoload=False)
    plugin = InlinePlugin()
    manager.register(plugin, name="inline-test-plugin")
    try:
        yield manager
    finally:
        manager.unregister(plugin)
