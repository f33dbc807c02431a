"""The plugin manager: built-in launchers and third-party plugins, registered alike.

Built-ins are the packages under ``plugins/`` (installed as top-level ``pastset_*``
packages); they are imported by module name and registered under the same names their
``[project.entry-points.pastset]`` entries use, so the entry-point loader skips them and
``PASTSET_DISABLE_PLUGIN_AUTOLOAD=1`` turns off only third-party plugins.
"""
from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from typing import Dict, Optional

import pluggy

from . import hookspecs
from .errors import SettingsError

hookimpl = pluggy.HookimplMarker("pastset")

#: entry-point name -> module of the launchers that ship inside the pastset wheel
BUILTIN_PLUGINS = {
    "local": "pastset_local",
    "ssh": "pastset_ssh",
    "slurm": "pastset_slurm",
    "sge": "pastset_sge",
    "pbs": "pastset_pbs",
}

AUTOLOAD_SWITCH = "PASTSET_DISABLE_PLUGIN_AUTOLOAD"

_manager: Optional[pluggy.PluginManager] = None


def make_plugin_manager(autoload: Optional[bool] = None) -> pluggy.PluginManager:
    """Build a fresh plugin manager with built-ins and (unless disabled) entry points."""
    pm = pluggy.PluginManager("pastset")
    pm.add_hookspecs(hookspecs)
    for name, module_name in BUILTIN_PLUGINS.items():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue  # a trimmed install may leave a launcher out
        pm.register(module, name=name)
    if autoload is None:
        autoload = not os.environ.get(AUTOLOAD_SWITCH)
    if autoload:
        pm.load_setuptools_entrypoints("pastset")
    pm.check_pending()
    return pm


def get_plugin_manager() -> pluggy.PluginManager:
    """The process-wide plugin manager, built on first use."""
    global _manager
    if _manager is None:
        _manager = make_plugin_manager()
    return _manager


@dataclass(frozen=True)
class LauncherInfo:
    """A registered launcher and where it comes from."""

    name: str
    cls: type
    provider: str  # "pastset 0.1.0 (built-in)" or "acme-launcher 1.2"


def launchers(pm: Optional[pluggy.PluginManager] = None) -> Dict[str, LauncherInfo]:
    """All launchers the plugins register, by name."""
    pm = pm or get_plugin_manager()
    providers = _plugin_providers(pm)
    found: Dict[str, LauncherInfo] = {}
    for impl in pm.hook.pastset_register_launchers.get_hookimpls():
        plugin_name = pm.get_name(impl.plugin) or "?"

        def register(cls, _plugin_name=plugin_name):
            name = getattr(cls, "name", "")
            if not name or not isinstance(name, str):
                raise SettingsError(f"plugin {_plugin_name!r} registered a launcher without a name: {cls!r}")
            found[name] = LauncherInfo(name, cls, providers.get(_plugin_name, _plugin_name))

        impl.function(register=register)
    return found


def _plugin_providers(pm: pluggy.PluginManager) -> Dict[str, str]:
    from . import __version__

    providers = {name: f"pastset {__version__} (built-in)" for name in BUILTIN_PLUGINS}
    for plugin, dist in pm.list_plugin_distinfo():
        plugin_name = pm.get_name(plugin)
        meta = getattr(dist, "metadata", None)
        dist_name = (meta["name"] if meta is not None else None) or getattr(dist, "project_name", "?")
        providers[plugin_name] = f"{dist_name} {dist.version}"
    return providers
