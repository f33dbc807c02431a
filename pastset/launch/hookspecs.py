"""The hooks a pastset plugin can implement (pluggy project name ``pastset``).

Hooks are always called with keyword arguments, so parameters can be added later
without breaking plugins that do not take them.
"""
from __future__ import annotations

import pluggy

hookspec = pluggy.HookspecMarker("pastset")


@hookspec
def pastset_register_launchers(register):
    """Register launcher classes.

    :param register: call ``register(LauncherSubclass)`` once per launcher; the class's
        ``name`` attribute is the value users put in the ``launcher`` setting.
    :return: nothing; every plugin's implementation is called.
    """


@hookspec
def pastset_configure(settings):
    """Adjust settings before the environment and command-line flags are applied.

    The modern form of PSCONFHELP: a batch-system plugin can read what its scheduler
    provides and call ``settings.set(name, value, source="...")``. Values set here are
    still overridden by PS* environment variables and flags.

    :param settings: the :class:`pastset.settings.load.Settings` being built.
    :return: nothing; every plugin's implementation is called.
    """
