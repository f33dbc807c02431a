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
    """The element was removed by ``delelement`` (before or during the call); a handle on it
    keeps failing so, and entering its template again gives a new element."""


class XFunctionError(PastSetError):
    """An X-function module is missing or could not be loaded, or it raised while handling
    a call (the message carries its exception)."""


class TaskError(PastSetError):
    """A spawned task never ran (its file was not found, it could not start) or its
    worker was lost; the message says which task and why."""


class Timeout(PastSetError, TimeoutError):
    """A call with a timeout ran out of time. Nothing was moved or consumed, except by
    ``move_many``: the tuples it moved before the time ran out stay moved, and its
    ``moved`` attribute (and message) says how many.

    The message names the operation, the element and the time waited:
    ``observe on element ('sum', int) timed out after 2 s``. It is also a ``TimeoutError``,
    which is an ``OSError``: code that handles ``OSError`` should catch ``PastSetError``
    first.
    """


class ConnectError(PastSetError, ConnectionError):
    """The server cannot be reached, refused the authkey, or was lost mid-call; or there is
    no run to connect to (the message says how to start one). Also a ``ConnectionError``."""


class SettingsError(PastSetError, ValueError):
    """A run's set-up is wrong before anything starts: a setting with an invalid value (the
    message names the setting and where it came from), a config file with unknown keys, a
    launcher that is not installed, an application that is not found, an address the server
    cannot bind. Also a ``ValueError``."""


class LaunchError(PastSetError):
    """The workers could not be started or did not all register within ``wait_timeout``
    (the message names the hosts, jobs or commands), or the application or a remote master
    could not be started."""
