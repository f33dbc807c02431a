"""The exceptions a PastSet program can catch; all derive from PastSetError.

They travel from the server to the client pickled, so they must stay importable
under these names and constructible from their single message argument.
"""
from __future__ import annotations


class PastSetError(Exception):
    """Base of every error pastset raises on purpose."""


class Expired(PastSetError):
    """The tuple asked for was dropped by ``axe``."""


class ElementDeleted(PastSetError):
    """The element was removed by ``delelement`` (before or during the call)."""


class XFunctionError(PastSetError):
    """An X-function module could not be loaded, or raised while handling a call."""


class TaskError(PastSetError):
    """A spawned task never ran (its file was not found, it could not start) or its
    worker was lost; the message says which task and why."""


class Timeout(PastSetError, TimeoutError):
    """A call with a timeout ran out of time. Nothing was moved or consumed, except by
    ``move_many``: the tuples it moved before the time ran out stay moved, and its
    ``moved`` attribute (and message) says how many."""


class ConnectError(PastSetError, ConnectionError):
    """The server cannot be reached, refused the authkey, or was lost mid-call."""


class SettingsError(PastSetError, ValueError):
    """A setting has an invalid value; the message names the setting and its source."""


class LaunchError(PastSetError):
    """Workers could not be started or did not come; the message names hosts/jobs."""
