"""Settings: the table of every setting (:mod:`.specs`), config files, conf_help, host
files, and :func:`load_settings`, which layers them into one :class:`Settings`."""
from __future__ import annotations

from .load import Settings, load_settings

__all__ = ["Settings", "load_settings"]
