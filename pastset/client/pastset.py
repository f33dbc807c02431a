"""The client API: ``PastSet`` connects to a run's tuple space; element handles use it.

Each thread gets its own connection (:mod:`pastset.client.channel`), so a call blocked in
one thread never holds up another. A wrong argument is refused by the public method the
program called, before anything is sent: the error's traceback ends at that method's check
(``raise exc.with_traceback(None)`` drops the checking helper's frames), so the last line
a program's author sees is their own call and the argument it names. Every call goes through the typed stub of the
contract's :class:`~pastset.wire.contract.SpaceCalls`; element handles
(:mod:`pastset.client.handles`) share it.
"""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, Optional, Sequence, Tuple, Union

from ..errors import ConnectError, ElementDeleted, PastSetError, XFunctionError
from ..wire import connection as transport
from ..wire import frames
from ..wire.contract import SpaceCalls, stub
from ..wire.runenv import ADDRESS_ENV, AUTHKEY_ENV, STRICT_ENV, TLS_ENV
from ..wire.validation import check_app_name, check_module_name, check_seconds, show, spawn_arguments
from .channel import Channel
from .handles import ElementHandle, check_template, unimportable_template

if TYPE_CHECKING:
    from .task import Task

_NO_RUN = ("no PastSet run to connect to: start your program with `python -m pastset run "
           "app.py` (which sets PASTSET_ADDRESS and PASTSET_AUTHKEY), or pass "
           "PastSet(address=(host, port), authkey=key) of a running pastset.Server")


class PastSet:
    """A connection to a PastSet tuple space.

    ``PastSet()`` inside a run finds it through PASTSET_ADDRESS / PASTSET_AUTHKEY (and
    PASTSET_TLS_FINGERPRINT when the run uses TLS); elsewhere give ``address``
    ("host:port" or (host, port)) and ``authkey``.
    ``strict=True`` checks every move against the element's template (off by default,
    as in the original; the PASTSET_STRICT environment variable turns it on for a run).
    ``tls`` is the fingerprint of the server's TLS certificate (``server.tls_fingerprint``)
    for a server that speaks TLS; ``None`` takes it from PASTSET_TLS_FINGERPRINT when that
    is set (plain text otherwise), ``True`` requires it from there, ``False`` means plain text.

    A PastSet and its element handles may be used from several threads at once: each
    thread gets a connection of its own, so a call blocked in one thread never holds up
    another. ``with PastSet(...) as pset:`` closes them all at the end of the block.

    :param address: the server's ``"host:port"`` or ``(host, port)``; default: the run's
        (PASTSET_ADDRESS).
    :param authkey: the server's key; default: the run's (PASTSET_AUTHKEY, in hex).
    :param connect_timeout: seconds each connection may take to connect and authenticate.
    :param strict: check every move against the element's template (a ``TypeError`` when
        it does not fit); default: PASTSET_STRICT, else off.
    :param tls: the server certificate's fingerprint, or True/False/None as above.
    :raises ConnectError: no run to connect to (the message says how to start one), the
        server is unreachable, or it refused the key or the certificate.
    """

    def __init__(self, address: Union[str, Tuple[str, int], None] = None, authkey: Optional[bytes] = None,
                 *, connect_timeout: float = 10.0, strict: Optional[bool] = None,
                 tls: Union[None, bool, str] = None):
        if address is None:
            address = os.environ.get(ADDRESS_ENV) or None
            if address is None:
                raise ConnectError(_NO_RUN)
        try:
            address = transport.parse_address(address)
            check_seconds("connect_timeout", connect_timeout)
        except (TypeError, ValueError) as exc:
            raise exc.with_traceback(None) from None
        if strict is not None and not isinstance(strict, bool):
            raise TypeError(f"strict must be True, False or None, not {type(strict).__name__}: {show(strict)}")
        if authkey is None:
            hex_key = os.environ.get(AUTHKEY_ENV)
            if not hex_key:
                raise ConnectError(f"no authkey for the PastSet server at {transport.format_address(address)}: "
                                   f"pass authkey= or set {AUTHKEY_ENV}")
            try:
                authkey = bytes.fromhex(hex_key)
            except ValueError:
                raise ConnectError(f"{AUTHKEY_ENV} is not a hex string") from None
        if not isinstance(authkey, (bytes, bytearray)):
            raise TypeError(f"authkey must be bytes, not {type(authkey).__name__}: {show(authkey)}")
        if strict is None:
            strict = os.environ.get(STRICT_ENV, "").lower() in ("1", "true", "yes", "on")
        self.strict = strict
        try:
            fingerprint = _fingerprint(tls, address)
        except (TypeError, ValueError) as exc:
            raise exc.with_traceback(None) from None
        self._channel = Channel(address, bytes(authkey), connect_timeout, tls=fingerprint)
        self._calls: SpaceCalls = stub(self._channel.caller(), SpaceCalls)
        self.server_info = self._calls.hello()
        # move and an unindexed observe go as compact frames when the server reads them
        self._call_frame = self._channel.call_frame if self.server_info.get("frames") == frames.VERSION else None

    @property
    def address(self) -> Tuple[str, int]:
        """The (host, port) of the server this PastSet is connected to."""
        return self._channel.address

    def enter(self, template: tuple, xfunction: Optional[str] = None) -> ElementHandle:
        """The element named by ``template``, created empty if nobody entered it before.

        Equal templates name the same element, whoever enters them; a template is a
        non-empty, hashable tuple that can be pickled, usually a tag and types:
        ``("jobs", int)``.

        :param template: the element's name.
        :param xfunction: a module in the run's bin directory whose ``Element`` class
            implements the element (an X-function); a plain module name, no dots or
            paths. The first ``enter`` of a template decides: an element that exists is
            returned as it is.
        :return: a handle whose methods are the PastSet operations on the element.
        :raises TypeError: the template is not a tuple, or cannot be hashed or pickled, or
            names a class the server cannot import (one defined in the program's script).
        :raises ValueError: the template is empty, or nests too deep; the module name is
            not a plain name.
        :raises XFunctionError: the X-function module is missing, failed to import, or its
            ``Element`` raised when created.
        """
        try:
            check_template(template)
            if xfunction is not None:
                check_module_name(xfunction)
        except (TypeError, ValueError) as exc:
            raise exc.with_traceback(None) from None
        try:
            eid = self._calls.enter(template, xfunction)
        except XFunctionError as exc:  # a module name only the server can find wrong
            raise exc.with_traceback(None) from None
        except ValueError as exc:  # a template the server could not unpickle
            raise unimportable_template(template, exc).with_traceback(None) from None
        return ElementHandle(self._calls, eid, template, self.strict, self._call_frame)

    def delelement(self, element: Union[ElementHandle, tuple]) -> None:
        """Remove an element, by handle or by template.

        Calls blocked on it fail with ``ElementDeleted``, and so does every later call
        through an old handle; entering the template again gives a new, empty element.
        """
        if isinstance(element, ElementHandle):
            try:
                self._calls.delelement_id(element._eid)
            except ElementDeleted:
                raise element._deleted() from None
            return
        if not isinstance(element, tuple):
            raise TypeError(f"delelement needs an element handle or a template tuple such as "
                            f"('name', int), not {type(element).__name__}: {show(element)}")
        try:
            check_template(element)
        except (TypeError, ValueError) as exc:
            raise exc.with_traceback(None) from None
        try:
            self._calls.delelement(element)
        except ValueError as exc:  # a template the server could not unpickle
            raise unimportable_template(element, exc).with_traceback(None) from None

    def spawn(self, app: str, args: Union[str, Sequence[Union[str, int, float]]] = ()) -> "Task":
        """Queue a task: some worker runs ``python app args`` from the run's bin directory.

        The task is a program of its own: its arguments arrive as strings in
        ``sys.argv[1:]``, its output reaches the run's stdout and stderr line by line, and
        ``pastset.PastSet()`` in it connects to the same run.

        :param app: the task's file, inside the bin directory (no absolute path, no ``..``).
        :param args: one str (a single argument) or a list or tuple of str, int or float,
            each passed as its ``str()``.
        :return: the task's handle, which is also its id string (``"t3"``).
        :raises TypeError: an argument of another type (the message names it).
        :raises ValueError: ``app`` is not a relative path inside the bin directory.
        :raises PastSetError: ``halt()`` was called: no more tasks are taken.
        """
        from .task import Task  # only programs that spawn need it

        try:
            check_app_name(app)
            arglist = spawn_arguments(args)
        except (TypeError, ValueError) as exc:
            raise exc.with_traceback(None) from None
        try:
            return Task(self._calls.spawn(app, arglist), self._calls)
        except ConnectError:
            raise
        except PastSetError as exc:  # refused by the run (after halt): the traceback ends here
            raise exc.with_traceback(None) from None

    def halt(self) -> None:
        """Say that no more tasks will come: workers finish once the queue is empty, and a
        ``spawn`` after it is an error."""
        self._calls.halt()

    def status(self) -> dict:
        """The run's status document, what ``pastset status --json`` prints: elements with
        their flows and waiting calls, tasks, workers (keys: :mod:`pastset.observe.statusdoc`)."""
        return self._calls.status()

    def close(self) -> None:
        """Close every connection of this PastSet (other PastSets are unaffected)."""
        self._channel.close()

    def __enter__(self) -> "PastSet":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<pastset.PastSet {transport.format_address(self.address)}>"


def _fingerprint(tls: Union[None, bool, str], address: Tuple[str, int]) -> Optional[str]:
    """The server certificate's fingerprint a PastSet pins (None: plain text), from its
    ``tls`` argument and the environment (see :class:`PastSet`)."""
    if tls is False:
        return None
    if tls is None or tls is True:
        found = os.environ.get(TLS_ENV)
        if not found:
            if tls is True:
                raise ConnectError(f"tls=True, but {TLS_ENV} is not set: pass the server's certificate "
                                   f"fingerprint (server.tls_fingerprint) as tls= to connect to "
                                   f"{transport.format_address(address)}")
            return None
        tls = found
        source = TLS_ENV
    else:
        source = "tls"
    from ..wire.tls import parse_fingerprint

    return parse_fingerprint(tls, source)
