"""The plugin manager: built-in launchers and third-party plugins, registered alike.

Built-ins are the packages under ``plugins/`` (installed as top-level ``pastset_*``
packages). They are listed once, as the ``pastset`` distribution's own entry points in the
group ``pastset`` — the group a third-party launcher package uses — and registered under
those names before any other plugin. ``PASTSET_DISABLE_PLUGIN_AUTOLOAD=1`` turns off only
the entry points of other distributions.
"""
from __future__ import annotations

import functools
import importlib
import os
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Dict, Mapping, Optional, Type

import pluggy

from ..errors import SettingsError
from . import hookspecs

if TYPE_CHECKING:
    from .launcher import Launcher

hookimpl = pluggy.HookimplMarker("pastset")

ENTRY_POINT_GROUP = "pastset"


@functools.lru_cache(maxsize=None)
def builtin_plugins() -> Mapping[str, str]:
    """Plugin name -> module of the launchers that ship inside the pastset wheel.

    Read from this distribution's entry points, the one place they are listed, on first
    use: importing this module (as every plugin does, for :data:`hookimpl`) reads no
    package metadata.
    """
    from importlib import metadata

    try:
        dist = metadata.distribution("pastset")
    except metadata.PackageNotFoundError:
        raise SettingsError("pastset is not installed (its built-in launchers are listed in its "
                            "package metadata): run `pip install -e .` in the source tree") from None
    return MappingProxyType({ep.name: ep.value for ep in dist.entry_points if ep.group == ENTRY_POINT_GROUP})


AUTOLOAD_SWITCH = "PASTSET_DISABLE_PLUGIN_AUTOLOAD"

_manager: Optional[pluggy.PluginManager] = None


def make_plugin_manager(autoload: Optional[bool] = None) -> pluggy.PluginManager:
    """Build a fresh plugin manager with built-ins and (unless disabled) entry points."""
    pm = pluggy.PluginManager("pastset")
    pm.add_hookspecs(hookspecs)
    for name, module_name in builtin_plugins().items():
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
        pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
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
    cls: Type[Launcher]
    provider: str  # "pastset 0.1.0 (built-in)" or "acme-launcher 1.2"


def launchers(pm: Optional[pluggy.PluginManager] = None) -> Dict[str, LauncherInfo]:
    """All launchers the plugins register, by name.

    The hook is called through pluggy one plugin at a time, so each launcher is credited
    to the plugin that registered it.

    :raises SettingsError: a launcher has no name, or its name is taken by another
        launcher (the message names both providers).
    """
    pm = pm or get_plugin_manager()
    providers = _plugin_providers(pm)
    found: Dict[str, LauncherInfo] = {}
    implementers = [impl.plugin for impl in pm.hook.pastset_register_launchers.get_hookimpls()]
    for plugin in reversed(implementers):  # in registration order: built-ins first
        plugin_name = pm.get_name(plugin) or "?"
        provider = providers.get(plugin_name, plugin_name)

        def register(cls: Type[Launcher], _provider: str = provider) -> None:
            name = getattr(cls, "name", "")
            if not name or not isinstance(name, str):
                raise SettingsError(f"{_provider} registered a launcher without a name: {cls!r}")
            if name in found:
                raise SettingsError(f"two launchers are named {name!r}: one from {found[name].provider}, "
                                    f"one from {_provider}; uninstall one of them (or set "
                                    "PASTSET_DISABLE_PLUGIN_AUTOLOAD=1 to load only the built-ins)")
            found[name] = LauncherInfo(name, cls, _provider)

        others = [p for p in implementers if p is not plugin]
        pm.subset_hook_caller("pastset_register_launchers", remove_plugins=others)(register=register)
    return found


def _plugin_providers(pm: pluggy.PluginManager) -> Dict[str, str]:
    from .. import __version__

    providers = {name: f"pastset {__version__} (built-in)" for name in builtin_plugins()}
    for plugin, dist in pm.list_plugin_distinfo():
        plugin_name = pm.get_name(plugin)
        if plugin_name is None:
            continue
        meta = getattr(dist, "metadata", None)
        dist_name = (meta["name"] if meta is not None else None) or getattr(dist, "project_name", "?")
        providers[plugin_name] = f"{dist_name} {dist.version}"
    return providers
