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
        forwarder = sshtunnel.SSHTunnelForwarder(
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


def _no_delay(forwarder: Any) -> None:
    """TCP_NODELAY on the ssh connection and on every forwarded local connection.

    Without it a reply split over two writes (multiprocessing.connection sends a length
    prefix, then the body) waits for the peer's delayed ACK: 40 ms per call.
    """
    transport_sock = getattr(getattr(forwarder, "_transport", None), "sock", None)
    if isinstance(transport_sock, socket.socket):
        transport_sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    for server in getattr(forwarder, "_server_list", []):
        handler = server.RequestHandlerClass

        class NoDelayHandler(handler):  # type: ignore[misc,valid-type]
            def setup(self) -> None:
                self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                super().setup()

        server.RequestHandlerClass = NoDelayHandler


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
