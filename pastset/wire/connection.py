"""The wire: authenticated TCP connections tuned for many small request/response calls.

``multiprocessing.connection`` is the transport BaseManager speaks; this module plugs a
leaner variant into it under the serializer name ``"pastset"``
(``multiprocessing.managers.listener_client``), fixing what costs time or robustness:

* TCP_NODELAY on both ends: without it a connect + first call waits on delayed ACKs
  (~220 ms instead of ~3 ms here).
* messages pickled with ``pickle.dumps`` instead of a fresh ``ForkingPickler`` per
  message (~0.5 µs instead of ~2.8 µs for a small request).
* a listen backlog of 4096 instead of 16, so hundreds of clients can connect at once.
* TCP keepalive and TCP_USER_TIMEOUT, so a peer whose host vanished is noticed in
  seconds instead of never.
* one deadline for the whole authentication handshake, and a cap on connections still
  in it, so silent, slow or half-open peers cannot hold server threads (the server
  enforces both; this module holds the limits).
* a length no message can have (more than this machine's memory) is refused as an
  OSError before anything is read or allocated for it.
* optionally TLS 1.3 (:class:`TLSConnection`, :mod:`pastset.wire.tls`), the server's
  certificate pinned by its fingerprint; the HMAC handshake runs inside it.
"""
from __future__ import annotations

import errno
import hmac
import io
import os
import pickle
import select
import socket
import struct
import sys
import threading
from multiprocessing import connection as mpc
from typing import TYPE_CHECKING, Any, Optional, Sequence, Tuple, Union

from ..errors import ConnectError

SERIALIZER = "pastset"
BACKLOG = 4096
#: seconds an unauthenticated peer gets to complete the whole HMAC handshake
HANDSHAKE_TIMEOUT = 10.0
#: connections that have not proved the key yet, held at once; beyond it the oldest is dropped
MAX_PENDING_HANDSHAKES = 1024
#: the longest handshake message read (a challenge or an HMAC answer), as multiprocessing's
HANDSHAKE_MESSAGE = 256
#: a TLS server's first message, before TLS starts (see :mod:`pastset.wire.tls`): a client
#: without the certificate is refused with it, and a stock client fails on it showing it
TLS_NOTICE = (b"#TLS# this PastSet server speaks TLS 1.3; connect with the run's certificate "
              b"fingerprint (PASTSET_TLS_FINGERPRINT, or PastSet(tls=...))")
_TLS_TAG = TLS_NOTICE[:5]
# keepalive: first probe after 5 s idle, then every 3 s, give up after 3 misses (~14 s);
# TCP_USER_TIMEOUT bounds how long sent data may stay unacknowledged.
KEEPALIVE_IDLE, KEEPALIVE_INTERVAL, KEEPALIVE_COUNT = 5, 3, 3
USER_TIMEOUT_MS = 20_000

_dumps = pickle.dumps
_read = os.read
_write = os.write
_SIZE = struct.Struct("!i")
_SIZE64 = struct.Struct("!Q")
_loads = pickle.loads
_HIGHEST = pickle.HIGHEST_PROTOCOL
#: the most bytes one read asks for (a read allocates what it asks for, whatever comes)
_READ_CHUNK = 1 << 24
#: what the read that waits for a message asks for: a move, an observe and their replies
#: fit (the rest of a longer message is read at once, knowing its length). Sized so that the
#: bytes object the read allocates is one of pymalloc's small blocks (at most 512 bytes with
#: its header) rather than a C malloc: a server thread allocates it for every request, and
#: thousands of threads doing so through glibc's per-thread arenas and caches fragment them
#: (measured with 2,000 connections doing pairs for 3 s, a 4 KiB read: server RSS 28 KB per
#: connection after one pair, 54 KB after the 3 s; this one: 21 KB and 21 KB)
FIRST_READ = 512 - sys.getsizeof(b"")


def _memory_size() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 1 << 40


#: the longest message either side accepts: one longer than this machine's memory is absurd
MAX_MESSAGE = _memory_size()

Address = Tuple[str, int]


def parse_address(text: Union[str, Tuple[str, int]]) -> Address:
    """``"host:port"`` or ``"[v6]:port"`` or a (host, port) pair -> (host, port)."""
    port_text: Any
    if isinstance(text, (tuple, list)):
        if len(text) != 2:
            raise ValueError(f"address must be (host, port), not {text!r}")
        host, port_text = text
    elif isinstance(text, str):
        host, sep, port_text = text.rpartition(":")
        if not sep or not host:
            raise ValueError(f"address {text!r} is not of the form host:port")
        host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    else:
        raise TypeError(f"address must be 'host:port' or (host, port), not {type(text).__name__}")
    try:
        port = int(port_text)
    except (TypeError, ValueError):
        raise ValueError(f"port {port_text!r} in address {text!r} is not a number") from None
    if not 0 <= port <= 65535:
        raise ValueError(f"port {port} in address {text!r} is out of range 0..65535")
    return str(host), port


def format_address(address: Sequence[Any]) -> str:
    """``("10.0.0.1", 4242)`` -> ``"10.0.0.1:4242"`` (IPv6 hosts in brackets)."""
    host, port = address[0], address[1]
    if ":" in str(host):
        return f"[{host}]:{port}"
    return f"{host}:{port}"


def tune_socket(sock: socket.socket) -> None:
    """TCP_NODELAY and keepalive on a connected TCP socket."""
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    set_keepalive(sock)


def set_keepalive(sock: Any) -> None:
    """TCP keepalive and TCP_USER_TIMEOUT on a connected TCP socket (or one with its
    ``setsockopt``), so a peer whose host vanished is noticed in seconds."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for name, value in (("TCP_KEEPIDLE", KEEPALIVE_IDLE), ("TCP_KEEPINTVL", KEEPALIVE_INTERVAL),
                        ("TCP_KEEPCNT", KEEPALIVE_COUNT), ("TCP_USER_TIMEOUT", USER_TIMEOUT_MS)):
        option = getattr(socket, name, None)
        if option is not None:
            sock.setsockopt(socket.IPPROTO_TCP, option, value)


def set_receive_timeout(fd: int, seconds: float) -> None:
    """Bound every blocking read on ``fd`` (0 = no bound); used around the handshake."""
    sock = socket.socket(fileno=fd)
    try:
        whole = int(seconds)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO,
                        struct.pack("ll", whole, int((seconds - whole) * 1e6)))
    finally:
        sock.detach()


def write_all(fd: int, data: bytes) -> None:
    """Write all of ``data`` to ``fd`` (blocking)."""
    sent = _write(fd, data)
    while sent < len(data):
        sent += _write(fd, memoryview(data)[sent:])


class Connection(mpc.Connection):
    """A multiprocessing Connection that pickles with plain ``pickle.dumps``.

    Reads are buffered: one ``read`` usually brings a whole small message (header and
    body), where the base class reads the header and the body separately; a small
    message goes out in one ``write`` of header and body.
    """

    _rbuf = b""

    if TYPE_CHECKING:  # what the base class has but typeshed does not declare
        _handle: int  # None once closed: send() and recv() check

        def _check_closed(self) -> None: ...
        def _send_bytes(self, buf: bytes) -> None: ...
        def _send(self, buf: bytes) -> None: ...

    def __init__(self, handle: int, readable: bool = True, writable: bool = True):
        super().__init__(handle, readable, writable)
        # close() and shutdown() run in different threads (a serving thread ends its
        # connection while Server.close() wakes them all); os.close releases the GIL
        # before _handle is cleared, so unguarded, shutdown() could act on a closed
        # (EBADF) or, worse, reused descriptor.
        self._closing = threading.Lock()

    def close(self) -> None:
        with self._closing:
            super().close()

    def send(self, obj) -> None:
        handle = self._handle
        if handle is None:
            self._check_closed()
        buf = _dumps(obj, _HIGHEST)
        size = len(buf)
        if size > 16384:  # big: no copy to join the header on (Nagle is off anyway)
            self._send_bytes(buf)
            return
        buf = _SIZE.pack(size) + buf  # header and body in one write
        sent = _write(handle, buf)
        if sent < len(buf):
            self._send(buf[sent:])

    def send_message(self, message: bytes) -> None:
        """Send a message that already starts with its 4-byte length header (a frame)."""
        handle = self._handle
        if handle is None:
            self._check_closed()
        sent = _write(handle, message)
        if sent < len(message):
            self._send(message[sent:])

    def recv(self):
        return _loads(self.recv_message())

    def recv_message(self) -> bytes:
        """The next whole message, still pickled (the server checks requests before unpickling)."""
        handle = self._handle
        if handle is None:
            self._check_closed()
        buf = self._rbuf
        if not buf:  # the common case: one read brings one whole small message
            buf = _read(handle, FIRST_READ)
            if not buf:
                raise EOFError
            if len(buf) >= 4:
                end = 4 + _SIZE.unpack_from(buf)[0]
                if end == len(buf):
                    return buf[4:]
            self._rbuf = buf
        return self._read_message(None)

    def _recv_bytes(self, maxsize=None):
        return io.BytesIO(self._read_message(maxsize))

    def _read_message(self, maxsize: Optional[int]) -> bytes:
        buf = self._rbuf
        while len(buf) < 4:
            buf += self._read_some(65536)
        size = _SIZE.unpack_from(buf)[0]
        start = 4
        if size == -1:  # the base class's 64-bit length form
            while len(buf) < 12:
                buf += self._read_some(65536)
            size = _SIZE64.unpack_from(buf, 4)[0]
            start = 12
        if size < 0 or (maxsize is not None and size > maxsize):
            raise OSError(f"bad message length {size}")
        if size > MAX_MESSAGE:
            raise OSError(f"a message of {size} bytes announced: more than this machine's memory; refused")
        end = start + size
        if len(buf) < end:
            parts = [buf]
            have = len(buf)
            while have < end:
                chunk = self._read_some(min(end - have, _READ_CHUNK))
                parts.append(chunk)
                have += len(chunk)
            buf = b"".join(parts)
        self._rbuf = buf[end:]
        return buf[start:end]

    def _read_some(self, n: int) -> bytes:
        chunk = _read(self._handle, n)
        if not chunk:
            raise EOFError
        return chunk

    def peer_gone(self) -> bool:
        """True if the peer closed or reset the connection (or sent unasked data).

        Only meaningful while we owe the peer an answer: a well-behaved client sends
        nothing while it waits, so anything readable means it is gone.
        """
        if self._handle is None:
            return True
        poller = select.poll()
        poller.register(self._handle, select.POLLIN | select.POLLHUP | select.POLLERR
                        | getattr(select, "POLLRDHUP", 0))
        return bool(poller.poll(0))

    def shutdown(self) -> None:
        """Wake a thread blocked reading this connection (it sees EOF); keep the fd."""
        with self._closing:
            if self._handle is None:
                return
            sock = socket.socket(fileno=self._handle)
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            finally:
                sock.detach()


class Listener:
    """A TCP listener: its socket, which the server's accept loop accepts from.

    Authentication is left to the server (as BaseManager's own server does), so a slow or
    silent peer never blocks ``accept``.
    """

    def __init__(self, address: Address, family=None, backlog: int = BACKLOG, authkey=None):
        host, port = address
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, _, _, _, sockaddr = infos[0]
        self._socket: Optional[socket.socket] = socket.socket(family, socket.SOCK_STREAM)
        try:
            self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self._socket.bind(sockaddr)
            self._socket.listen(max(backlog, BACKLOG))
        except OSError:
            self._socket.close()
            raise
        self.address: Address = self._socket.getsockname()[:2]

    @property
    def socket(self) -> socket.socket:
        """The listening socket; OSError once the listener is closed."""
        if self._socket is None:
            raise OSError(errno.EBADF, "the listener is closed")
        return self._socket

    def accept(self) -> Connection:
        """One connection, accepted and tuned, not authenticated (blocks until one comes)."""
        sock, _ = self.socket.accept()
        tune_socket(sock)
        return Connection(sock.detach())

    def close(self) -> None:
        sock, self._socket = self._socket, None
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)  # wakes a thread blocked in accept()
            except OSError:
                pass
            sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# -- the HMAC challenges (multiprocessing.connection's, byte for byte) ------------------------

CHALLENGE = b"#CHALLENGE#"
WELCOME = b"#WELCOME#"
FAILURE = b"#FAILURE#"
#: random bytes in the server's challenge: multiprocessing's form without a digest name
#: (HMAC-MD5), which clients of every Python version answer
CHALLENGE_BYTES = 20
#: digests a challenge may name (``{sha256}...``, as newer Pythons send); unnamed means MD5
_DIGESTS = frozenset({"md5", "sha256", "sha384", "sha3_256", "sha3_384"})


def _named_digest(message: bytes) -> Tuple[str, bytes]:
    """(digest name, the rest) of a challenge or answer that starts ``{name}``; ("", message)
    for one that names none (multiprocessing's legacy form: HMAC-MD5)."""
    if message[:1] == b"{":
        end = message.find(b"}", 1, 20)
        if end > 0:
            name = message[1:end].decode("ascii", "replace")
            if name in _DIGESTS:
                return name, message[end + 1:]
    return "", message


def challenge_answer(authkey: bytes, challenge: bytes) -> bytes:
    """The answer to ``challenge`` (what follows ``#CHALLENGE#``): its HMAC under ``authkey``,
    MD5 unless the challenge names another digest (then named in the answer too)."""
    name, _ = _named_digest(challenge)
    mac = hmac.new(authkey, challenge, name or "md5").digest()
    return b"{%s}%s" % (name.encode(), mac) if name else mac


def answer_is_right(authkey: bytes, challenge: bytes, answer: bytes) -> bool:
    """True if ``answer`` is the HMAC of ``challenge`` under ``authkey`` (MD5, or the digest
    the answer names)."""
    name, mac = _named_digest(answer)
    expected = hmac.new(authkey, challenge, name or "md5").digest()
    return hmac.compare_digest(expected, mac)


def frame(message: bytes) -> bytes:
    """``message`` with the transport's 4-byte length header (handshake messages are short)."""
    return _SIZE.pack(len(message)) + message


def connect(address: Address, authkey: bytes, timeout: float = 10.0, tls: Optional[str] = None) -> Connection:
    """Open an authenticated connection to a pastset server.

    ``tls`` is the fingerprint of the server's certificate (:mod:`pastset.wire.tls`) when
    the server speaks TLS, None when it speaks plain text; the server's first message says
    which it speaks, so a mismatch is named at once.

    Raises :class:`ConnectError` when nothing listens there, the handshake fails (wrong
    authkey, not a pastset server, TLS on one side only, another certificate), or nothing
    answers within ``timeout`` seconds.
    """
    host, port = address
    where = format_address(address)
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except OSError as exc:
        raise ConnectError(f"cannot reach the PastSet server at {host}:{port}: {exc}") from None
    conn: Optional[Connection] = None
    try:
        tune_socket(sock)
        first = _first_message(sock)  # a TLS server's notice, or a plain server's challenge
        tls_server = first[:5] == _TLS_TAG
        sock.settimeout(None)
        set_receive_timeout(sock.fileno(), timeout)  # bounds each read of the handshake from here
        if tls is None:
            if tls_server:
                raise ConnectError(f"the PastSet server at {where} speaks TLS; this client was started "
                                   "without the run's certificate (PASTSET_TLS_FINGERPRINT, or "
                                   "PastSet(tls=...))")
            conn = Connection(sock.detach())
            challenge = first
        else:
            if not tls_server:
                raise ConnectError(f"the PastSet server at {where} speaks plain text, not TLS; this client "
                                   "was given a certificate fingerprint (a server of another run there?)")
            from . import tls as tls_layer

            conn = tls_layer.client_connection(sock, where, tls, timeout)
            challenge = conn.recv_bytes(HANDSHAKE_MESSAGE)
        if challenge[:len(CHALLENGE)] != CHALLENGE:
            raise ConnectError(f"no PastSet handshake from {where} (not a pastset server): it sent "
                               f"{challenge[:40]!r}")
        conn.send_bytes(challenge_answer(authkey, challenge[len(CHALLENGE):]))
        if conn.recv_bytes(HANDSHAKE_MESSAGE) != WELCOME:
            raise mpc.AuthenticationError("digest sent was rejected")  # type: ignore[attr-defined]
        mpc.deliver_challenge(conn, authkey)
    except mpc.AuthenticationError:  # type: ignore[attr-defined]  # exported, not in typeshed
        _close_quietly(conn, sock)
        raise ConnectError(f"the PastSet server at {where} refused the authkey "
                           "(wrong PASTSET_AUTHKEY, or a server of another run)") from None
    except ConnectError:
        _close_quietly(conn, sock)
        raise
    except (OSError, EOFError) as exc:
        _close_quietly(conn, sock)
        raise ConnectError(f"no PastSet handshake from {where} "
                           f"(not a pastset server, or it is overloaded): {exc!r}") from None
    set_receive_timeout(conn.fileno(), 0)
    return conn


def _first_message(sock: socket.socket) -> bytes:
    """The server's first message (it speaks first), read within the socket's timeout."""
    buf = b""
    while len(buf) < 4 or len(buf) < 4 + _SIZE.unpack_from(buf)[0]:
        if len(buf) >= 4 and not 0 <= _SIZE.unpack_from(buf)[0] <= HANDSHAKE_MESSAGE:
            raise OSError(f"bad message length {_SIZE.unpack_from(buf)[0]}")
        chunk = sock.recv(4 + HANDSHAKE_MESSAGE - len(buf) if len(buf) >= 4 else 4 - len(buf))
        if not chunk:
            raise EOFError
        buf += chunk
    return buf[4:]


def _close_quietly(conn: Optional[Connection], sock: socket.socket) -> None:
    if conn is not None:
        conn.close()
    else:
        sock.close()


def register_serializer() -> None:
    """Make ``serializer="pastset"`` available to BaseManager: its server makes its
    listener from it (done by :mod:`pastset.server.acceptor`; clients do not need it, and
    ``multiprocessing.managers`` is slow to import). A BaseManager client on it would
    connect with :func:`connect` (``connect(address, authkey=key)``)."""
    from multiprocessing import managers

    managers.listener_client[SERIALIZER] = (Listener, connect)  # type: ignore[attr-defined]
