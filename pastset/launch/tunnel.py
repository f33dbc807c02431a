"""SSH port forwarding to the run's server, for nodes whose firewall lets only ssh through.

``tunnel = true`` makes every worker (and ``pastset status``) reach the server through an
sshd — the ``tunnel_via`` setting, else port 22 of the server's host — with sshtunnel
(paramiko): a local port on 127.0.0.1 forwards, inside the one ssh connection, to the
server address as the sshd sees it. sshtunnel and paramiko take a while to import, so
they are imported only when a tunnel is opened. A tunnel closes with its worker and never
holds up teardown: :func:`open_tunnel`'s closer gives up after a few seconds.

The sshd's host key is checked against the known_hosts files plain ssh reads: a key on
record must match (else the tunnel fails, as ssh would), and an sshd with no key on record
is used with a warning that it was not verified.

Where a round trip's time goes through the forward, and what this module does about it
(each measured with ``bench/bench_ssh.py`` against OpenSSH's ``ssh -L`` on the same path):

* paramiko reads each ssh packet in two or three exact-size reads on a socket with a
  timeout, each a poll and a recv: the ssh connection's socket is read ahead
  (:class:`_ReadAhead`), one recv bringing whatever has arrived;
* sshtunnel moves data between the local socket and the channel in one thread that
  select()s on both, waking on a pipe paramiko writes a byte to for every packet: here
  each direction has a thread of its own that blocks in recv (:func:`_forward`);
* AES-GCM first among the ciphers: one call seals a packet, where AES-CTR needs an HMAC
  computed besides;
* TCP_NODELAY on the ssh connection and on every forwarded connection.
"""
from __future__ import annotations

import getpass
import logging
import os
import socket
import threading
from typing import Any, Callable, List, Optional, Sequence, Tuple

from ..errors import ConnectError
from ..settings.load import Settings
from ..settings.specs import parse_spec

log = logging.getLogger("pastset.tunnel")

#: environment variable with the private key file a worker's tunnel logs in with
KEY_ENV = "PASTSET_TUNNEL_KEY"
#: seconds to reach the sshd and log in before the tunnel fails
CONNECT_TIMEOUT = 10.0
#: seconds :func:`open_tunnel`'s closer waits for sshtunnel before leaving it behind
CLOSE_TIMEOUT = 3.0
#: where recorded host keys are looked up (OpenSSH's defaults)
KNOWN_HOSTS = ("~/.ssh/known_hosts", "/etc/ssh/ssh_known_hosts")
#: host key types in the order we prefer to check them
_KEY_PREFERENCE = ("ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521",
                   "rsa-sha2-512", "rsa-sha2-256", "ssh-rsa")



def tunnel_spec(settings: Settings, server_address: Tuple[str, int]) -> str:
    """Where to tunnel through: the ``tunnel_via`` setting, else the server's host, port 22."""
    if settings is not None and settings.tunnel_via:
        return settings.tunnel_via
    host = server_address[0]
    return f"[{host}]:22" if ":" in host else f"{host}:22"


def known_host_key(host: str, port: int, files: Sequence[str] = KNOWN_HOSTS) -> Any:
    """The host key on record for ``host`` (``[host]:port`` unless port 22) in known_hosts
    ``files`` (hashed entries included), as a paramiko key; None if there is none."""
    import paramiko

    name = host if port == 22 else f"[{host}]:{port}"
    for path in files:
        path = os.path.expanduser(path)
        if not os.path.isfile(path):
            continue
        try:
            entry = paramiko.HostKeys(path).lookup(name)
        except (OSError, paramiko.SSHException) as exc:
            log.debug("cannot read %s: %s", path, exc)
            continue
        if entry:
            kind = next((k for k in _KEY_PREFERENCE if k in entry), next(iter(entry)))
            return entry[kind]
    return None


def open_tunnel(spec: str, server_address: Tuple[str, int], key: Optional[str] = None,
                timeout: float = CONNECT_TIMEOUT,
                known_hosts: Sequence[str] = KNOWN_HOSTS) -> Tuple[Tuple[str, int], Callable[[], None]]:
    """Forward a local port to ``server_address`` through the sshd named by ``spec``.

    :param spec: ``[user@]host[:port]`` of the sshd (user: this user by default).
    :param server_address: the server's (host, port) as seen from that sshd.
    :param key: private key file; default: PASTSET_TUNNEL_KEY, else the ssh agent and
        ~/.ssh keys (what plain ``ssh`` would use).
    :param known_hosts: files with recorded host keys; a recorded key must match.
    :returns: the local (host, port) to connect to, and a closer (idempotent, bounded).
    :raises ConnectError: the sshd cannot be reached, refuses the login, will not forward, or
        shows a host key other than the one on record.
    """
    user, host, port = parse_spec(spec)
    key = key or os.environ.get(KEY_ENV) or None
    where = f"{user + '@' if user else ''}{host}:{port}"
    if key and not os.path.isfile(key):
        raise ConnectError(f"tunnel via {where}: key file {key!r} does not exist")
    # paramiko connects without a time limit (minutes behind a dropping firewall): probe first
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as exc:
        raise ConnectError(f"tunnel via {where}: cannot reach the sshd: {exc}") from None

    import sshtunnel  # slow to import: only here, never on the direct path

    quiet = logging.getLogger("pastset.tunnel.sshtunnel")  # ours: sshtunnel adds no handlers then
    quiet.setLevel(logging.DEBUG if log.isEnabledFor(logging.DEBUG) else logging.CRITICAL)  # errors: ConnectError
    sshtunnel.SSHTunnelForwarder.daemon_forward_servers = True  # never keep a process alive
    sshtunnel.SSHTunnelForwarder.daemon_transport = True
    host_key = known_host_key(host, port, known_hosts)
    if host_key is None:
        log.warning("tunnel via %s: its host key is in no known_hosts file, so it is not verified", where)
    try:
        forwarder = _forwarder_class(sshtunnel, timeout)(
            (host, port), ssh_username=user or getpass.getuser(), ssh_pkey=key, ssh_host_key=host_key,
            remote_bind_address=tuple(server_address), local_bind_address=("127.0.0.1", 0), ssh_config_file=None,
            logger=quiet, set_keepalive=5.0)
        forwarder.start()
    except (sshtunnel.BaseSSHTunnelForwarderError, OSError, ValueError) as exc:
        check = ", and does its host key match known_hosts?" if host_key is not None else "?"
        raise ConnectError(f"tunnel via {where} to {server_address[0]}:{server_address[1]} failed: "
                           f"{exc or type(exc).__name__} (is the key authorised there, is "
                           f"AllowTcpForwarding on{check})") from None
    _no_delay(forwarder)
    local = ("127.0.0.1", int(forwarder.local_bind_port))
    log.info("tunnel %s:%s -> %s -> %s:%s", *local, where, *server_address)
    return local, _closer(forwarder)


def _ssh_socket(host: str, port: int, timeout: float) -> socket.socket:
    """A TCP connection to the sshd, TCP_NODELAY on (the ssh transport's socket)."""
    sock = socket.create_connection((host, port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


class _ReadAhead:
    """The ssh connection's socket for paramiko, read ahead.

    paramiko reads a packet as its first block, then the rest, then (for some MACs) the
    MAC, each a ``recv`` of exactly that many bytes on a socket with a timeout: a poll and
    a recv each. Here one recv brings whatever has arrived, and the reads that follow
    take it from memory. Everything else is the socket's own.
    """

    def __init__(self, sock: socket.socket):
        self._sock = sock
        self._ahead = b""

    def recv(self, size: int) -> bytes:
        if not self._ahead:
            data = self._sock.recv(max(size, 65536))
            if len(data) <= size:
                return data
            self._ahead = data
        out, self._ahead = self._ahead[:size], self._ahead[size:]
        return out

    def __getattr__(self, name: str) -> Any:  # send, settimeout, close, getpeername, _closed ...
        return getattr(self._sock, name)


def _forwarder_class(sshtunnel: Any, timeout: float) -> Any:
    """sshtunnel's forwarder whose ssh transport runs on a socket of ours, read ahead
    (:class:`_ReadAhead`; one per login attempt: a failed one closes its transport), and
    prefers AES-GCM."""

    class Forwarder(sshtunnel.SSHTunnelForwarder):
        def _get_transport(self) -> Any:
            self.ssh_proxy = _ReadAhead(_ssh_socket(self.ssh_host, self.ssh_port, timeout))
            transport = super()._get_transport()
            options = transport.get_security_options()
            gcm = [c for c in options.ciphers if c.endswith("-gcm@openssh.com")]
            options.ciphers = tuple(gcm + [c for c in options.ciphers if c not in gcm])
            return transport

    return Forwarder


def _no_delay(forwarder: Any) -> None:
    """TCP_NODELAY on every forwarded local connection, each moved by :func:`_forward`.

    Without TCP_NODELAY a reply split over two writes waits for the peer's delayed ACK:
    40 ms per call.
    """
    for server in getattr(forwarder, "_server_list", []):
        handler = server.RequestHandlerClass

        class ForwardHandler(handler):  # type: ignore[misc,valid-type]
            def setup(self) -> None:
                self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                super().setup()

            def _redirect(self, chan: Any) -> None:
                _forward(self.request, chan)

        server.RequestHandlerClass = ForwardHandler


def _copy(recv: Callable[[int], bytes], send: Callable[[bytes], Any]) -> None:
    """Send what ``recv`` reads until it reads nothing or either side fails."""
    try:
        while True:
            data = recv(65536)
            if not data:
                return
            send(data)
    except (OSError, EOFError):
        pass


def _forward(sock: socket.socket, chan: Any) -> None:
    """Move bytes between a forwarded local connection and its ssh channel until either
    side closes: this thread from the socket to the channel, a thread of its own back.

    Each blocks in its own recv, woken by the kernel or by paramiko's buffer, instead of
    one thread select()ing on both, woken for every packet by a byte paramiko writes to a
    pipe and reads back.
    """
    def back() -> None:
        try:
            _copy(chan.recv, sock.sendall)
        finally:
            try:
                sock.shutdown(socket.SHUT_RDWR)  # wakes the other direction
            except OSError:
                pass

    returning = threading.Thread(target=back, name="pastset-tunnel-back", daemon=True)
    returning.start()
    try:
        _copy(sock.recv, chan.sendall)
    finally:
        chan.close()  # wakes the other direction
        returning.join(CLOSE_TIMEOUT)


def _closer(forwarder: Any) -> Callable[[], None]:
    """A close function that stops the forwarder but never waits more than CLOSE_TIMEOUT."""
    lock = threading.Lock()
    closed: List[bool] = []

    def close() -> None:
        with lock:
            if closed:
                return
            closed.append(True)
        stopper = threading.Thread(target=_stop_quietly, args=(forwarder,), name="pastset-tunnel-close",
                                   daemon=True)
        stopper.start()
        stopper.join(CLOSE_TIMEOUT)
        if stopper.is_alive():
            log.warning("the ssh tunnel did not close within %g s; leaving it to exit with the process",
                        CLOSE_TIMEOUT)

    return close


def _stop_quietly(forwarder: Any) -> None:
    try:
        forwarder.stop(force=True)
    except Exception as exc:  # closing is best effort: the process is ending anyway
        log.debug("closing the tunnel: %s", exc)
