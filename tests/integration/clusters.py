"""Real clusters on this one machine for integration tests: sshd "hosts", SLURM, Grid Engine.

The launcher tests need the real programs a user has (OpenSSH, srun/sbatch, qsub/qrsh), so each
class here starts real daemons, on private addresses/ports/directories where the program allows
it, tracks every PID it started, and tears everything down in ``stop()`` -- also when ``start()``
fails halfway (``with`` and the ``start_*`` context managers call ``stop()`` on any failure).

- :class:`SshCluster`: a Linux bridge plus one network namespace per node, each with its own
  address and its own sshd; a firewalled node, a password-only node, a dead address and an sshd
  on the master side of the bridge (for ssh port forwarding from the firewalled node).
- :class:`SlurmCluster`: munged + slurmctld + slurmd on free ports with a private config.
- :class:`SgeCluster`: Son of Grid Engine qmaster + execd (fixed system paths, so one per machine)
  with a parallel environment ``smp`` in which ``qrsh -inherit`` works.

Everything needs root.  Recipes: /work/shared/recipes (ssh-hosts.md, slurm-single-node.md,
sge-single-node.sh); system packages: .ci/system-packages.sh.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import logging
import os
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterator, Mapping, Sequence

log = logging.getLogger(__name__)

__all__ = [
    "ClusterError",
    "DaemonDied",
    "SgeCluster",
    "SlurmCluster",
    "SshCluster",
    "require",
    "start_sge_cluster",
    "start_slurm_cluster",
    "start_ssh_cluster",
]


class ClusterError(RuntimeError):
    """A test cluster could not be started (the message carries command output / log tails)."""


class DaemonDied(ClusterError):
    """A daemon exited while we waited for it to come up: waiting longer cannot help."""


def require(component: object, reason: str) -> object:
    """Skip the test when ``component`` is missing -- but fail it under CI.

    ``component`` is what the test needs: a truth value (``os.geteuid() == 0``), a path or
    ``None`` (``shutil.which("sshd")``), or the name of an executable looked up on PATH.  A
    missing component calls ``pytest.skip(reason)``; when the environment variable ``CI`` is
    ``true``, ``pytest.fail(reason)`` instead, so a CI machine without sshd/SLURM/Grid Engine
    cannot turn the integration suite silently green.  Returns ``component`` when present.
    """
    import pytest

    present = bool(shutil.which(component)) if isinstance(component, (str, Path)) else bool(component)
    if not present:
        if os.environ.get("CI", "").strip().lower() == "true":
            pytest.fail(f"{reason} (CI=true: a missing component fails instead of skipping)",
                        pytrace=False)
        pytest.skip(reason)
    return component


# --------------------------------------------------------------------------------------------
# small process helpers shared by the clusters

def _run(argv: Sequence[str], *, timeout: float = 30, check: bool = True,
         env: Mapping[str, str] | None = None, input: str | None = None,
         cwd: str | os.PathLike[str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run one external command with a deadline; raise ClusterError with its output on failure."""
    log.debug("run: %s", shlex.join(argv))
    try:
        proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout,
                              env=None if env is None else dict(env), input=input,
                              stdin=None if input is not None else subprocess.DEVNULL, cwd=cwd)
    except subprocess.TimeoutExpired as exc:
        raise ClusterError(f"{shlex.join(argv)}: no answer within {timeout} s "
                           f"(stdout: {exc.stdout!r}, stderr: {exc.stderr!r})") from None
    if check and proc.returncode != 0:
        raise ClusterError(f"{shlex.join(argv)} exited {proc.returncode}\n"
                           f"stdout: {proc.stdout.strip()}\nstderr: {proc.stderr.strip()}")
    return proc


def _tail(path: str | os.PathLike[str], lines: int = 25) -> str:
    """Last lines of a daemon log, for error messages ('' when the log does not exist)."""
    try:
        with open(path, errors="replace") as f:
            text = f.read()
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def _logs_report(logs: Sequence[str | os.PathLike[str]]) -> str:
    parts = []
    for p in logs:
        parts.append(f"--- tail of {p} ---\n{_tail(p) or '(empty or missing)'}")
    return "\n".join(parts)


def _wait_for(predicate: Callable[[], object], *, timeout: float, what: str,
              logs: Sequence[str | os.PathLike[str]] = (), interval: float = 0.1) -> object:
    """Poll ``predicate`` until it returns a true value; ClusterError with log tails at the deadline."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        try:
            result = predicate()
            if result:
                return result
        except DaemonDied:
            raise
        except ClusterError as exc:
            last_error = exc
        if time.monotonic() >= deadline:
            detail = f"\nlast error: {last_error}" if last_error else ""
            raise ClusterError(f"timed out after {timeout} s waiting for {what}{detail}\n"
                               + _logs_report(logs))
        time.sleep(interval)


def _alive(pid: int) -> bool:
    """True when ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _children_map() -> dict[int, list[int]]:
    """ppid -> [pid] for every process, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    return children


def _descendants(pid: int) -> list[int]:
    """All (transitive) children of ``pid``, found via /proc."""
    children = _children_map()
    found: list[int] = []
    stack = list(children.get(pid, []))
    while stack:
        p = stack.pop()
        found.append(p)
        stack.extend(children.get(p, []))
    return found


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            raw = f.read()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()


def _terminate(pids: Sequence[int], *, grace: float = 3.0) -> None:
    """SIGTERM the given PIDs, wait up to ``grace`` seconds, then SIGKILL the survivors."""
    pids = [p for p in pids if p > 1 and p != os.getpid()]
    for p in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(p, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.05)
    for p in pids:
        if _alive(p):
            log.warning("pid %d (%s) ignored SIGTERM; killing it", p, _cmdline(p))
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(p, signal.SIGKILL)


def _stop_popen(proc: subprocess.Popen[bytes], *, grace: float = 3.0) -> None:
    """Terminate a daemon we started with Popen (and everything it forked) and reap it."""
    if proc.poll() is None:
        family = _descendants(proc.pid)
        _terminate([proc.pid], grace=grace)
        _terminate([p for p in family if _alive(p)], grace=grace)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=grace)
    if proc.poll() is None:  # pragma: no cover - SIGKILL already sent
        proc.kill()
        proc.wait()


def _spawn_daemon(argv: Sequence[str], logfile: Path,
                  env: Mapping[str, str] | None = None) -> subprocess.Popen[bytes]:
    """Start a foreground daemon in its own session (Ctrl-C on pytest does not hit it before
    the teardown does), output appended to ``logfile``."""
    log.debug("spawn: %s", shlex.join(argv))
    with open(logfile, "ab") as out:
        return subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True,
                                env=None if env is None else dict(env))


def _free_tcp_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (the kernel's choice of an ephemeral port)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _can_bind(host: str, port: int) -> bool:
    """True when nothing holds host:port (a listener on the wildcard address counts)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def _ssh_banner(host: str, port: int, timeout: float = 1.0) -> bool:
    """True when an SSH server answers on host:port (its banner, not just any listener)."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            return s.recv(64).startswith(b"SSH-")
    except OSError:
        return False


# --------------------------------------------------------------------------------------------
# SSH hosts in network namespaces

_SSHD = "/usr/sbin/sshd"


class _Cluster:
    """Life cycle shared by the clusters: ``start()`` once (tearing down whatever a failed
    start left), ``stop()`` always; usable as a context manager. Subclasses implement
    ``_start()`` (bring everything up, bounded) and ``stop()`` (idempotent)."""

    _started = False

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self):
        """Bring the cluster up; on any failure, tear down what exists and re-raise."""
        if self._started:
            return self
        self._started = True
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError


class SshCluster(_Cluster):
    """N ssh "hosts" on one machine: network namespaces hanging off a private Linux bridge.

    Layout of the /24 subnet (unique per session: derived from the PID, checked against every
    address and route in the root namespace):

    - ``.1``  ``master_address``: the bridge, in the root namespace (where the tests and the
      pastset server run); an sshd listens on ``master_address:22`` only, for ssh port
      forwarding back from the firewalled node (if a system sshd already holds ``*:22``, ours
      listens on ``master_sshd_port`` and an nftables DNAT rule for our bridge address makes
      it answer on ``master_address:22`` all the same);
    - ``.11``, ``.12``, ...  ``nodes``: normal nodes, sshd on port 22, root login by key;
    - ``.21``  ``firewalled``: like a node, but nftables inside its namespace let it open
      connections to the master only on TCP port 22 (other master ports: packets dropped, so a
      connect times out as behind a real firewall); everything else, and answers to connections
      the master opens, is allowed;
    - ``.31``  ``password_node``: its sshd refuses public keys and only offers passwords, so an
      ssh client in BatchMode fails at once instead of prompting;
    - ``.99``  ``dead_address``: nothing there (ARP gets no answer: "host is down").

    The namespaces share the file system, so ``python`` (this interpreter, with the editable
    pastset install) works on every node.  It is the absolute path on purpose: an ssh session
    gets sshd's default PATH (plus whatever root's ~/.bashrc adds), which need not contain this
    interpreter -- ``python3`` there may be the system one without pastset.
    """

    #: executables the cluster needs (for ``require``).
    BINARIES = ("ip", "nft", "ssh", "ssh-keygen", _SSHD)
    _SSH_OPTIONS = ("-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                    "-o", "BatchMode=yes", "-o", "ConnectTimeout=5", "-o", "LogLevel=ERROR")

    def __init__(self, tmpdir: str | os.PathLike[str], nodes: int = 2) -> None:
        if not 1 <= nodes <= 9:
            raise ValueError("nodes must be between 1 and 9")
        self.tmpdir = Path(tmpdir)
        self.node_count = nodes
        self.python: str = sys.executable
        self.nodes: list[str] = []
        self.firewalled: str = ""
        self.password_node: str = ""
        self.dead_address: str = ""
        self.master_address: str = ""
        self.subnet: ipaddress.IPv4Network | None = None
        self.bridge: str = ""
        self.key_path: str = str(self.tmpdir / "id_ed25519")
        #: where the master-side sshd really listens: 22, unless that was taken (see _start)
        self.master_sshd_port: int = 22
        self._nft_table: str = ""                   # root-namespace table, when we made one
        self._netns: dict[str, str] = {}            # node address -> namespace name
        self._sshd: dict[str, subprocess.Popen[bytes]] = {}   # address -> listening sshd
        self._host_links: list[str] = []            # veth ends in the root namespace
        self._started = False

    # ----- public API

    @property
    def ssh_options(self) -> list[str]:
        """Options (list form) every ssh to the cluster uses: key, no host-key checks, BatchMode."""
        return ["-i", self.key_path, *self._SSH_OPTIONS, "-l", "root"]

    @property
    def ssh_command(self) -> str:
        """A full ssh client command line, PSSSH-style, to which a host and a command are added."""
        return shlex.join(["ssh", *self.ssh_options])

    def ssh(self, host: str, command: str, *, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        """Run ``command`` (a shell string) on ``host`` through the real ssh client."""
        argv = ["ssh", *self.ssh_options, host, command]
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)

    @staticmethod
    def write_hosts_file(path: str | os.PathLike[str], hosts: Sequence[str]) -> Path:
        """Write a hosts file (one host per line) as the ssh launcher reads it; return its path."""
        p = Path(path)
        p.write_text("".join(f"{h}\n" for h in hosts))
        return p

    def namespace(self, ip: str) -> str:
        """Name of the network namespace that plays host ``ip``."""
        try:
            return self._netns[ip]
        except KeyError:
            raise KeyError(f"{ip} is not a node of this cluster "
                           f"(nodes: {', '.join(self._netns)})") from None

    def run_on(self, ip: str, argv: Sequence[str], *, timeout: float = 30,
               check: bool = False, **kwargs: object) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` inside node ``ip``'s namespace directly (``ip netns exec``, no ssh)."""
        kwargs.setdefault("capture_output", True)
        kwargs.setdefault("text", True)
        kwargs.setdefault("stdin", subprocess.DEVNULL)
        return subprocess.run(["ip", "netns", "exec", self.namespace(ip), *argv],
                              timeout=timeout, check=check, **kwargs)  # type: ignore[call-overload]

    def spawn_on(self, ip: str, argv: Sequence[str], **kwargs: object) -> subprocess.Popen[str]:
        """Start ``argv`` inside node ``ip``'s namespace without waiting; the Popen's pid is the
        command's own pid (``ip netns exec`` execs it).  The caller must wait for it."""
        kwargs.setdefault("stdin", subprocess.DEVNULL)
        return subprocess.Popen(["ip", "netns", "exec", self.namespace(ip), *argv],
                                **kwargs)  # type: ignore[call-overload]

    def processes_on(self, ip: str) -> list[tuple[int, str]]:
        """Processes running in node ``ip``'s namespace, except its listening sshd, as
        ``(pid, cmdline)``.  sshd session processes of still-open connections are included."""
        ns = self.namespace(ip)
        out = _run(["ip", "netns", "pids", ns], timeout=10).stdout.split()
        listener = self._sshd.get(ip)
        result = []
        for token in out:
            pid = int(token)
            if listener is not None and pid == listener.pid:
                continue
            if not _alive(pid):
                continue
            result.append((pid, _cmdline(pid)))
        return result

    def wait_no_processes(self, ip: str, timeout: float = 5.0) -> list[tuple[int, str]]:
        """Wait (bounded) until ``processes_on(ip)`` is empty; return what is left at the end
        (empty list = clean).  sshd session processes need a moment to go after a disconnect."""
        deadline = time.monotonic() + timeout
        while True:
            left = self.processes_on(ip)
            if not left or time.monotonic() >= deadline:
                return left
            time.sleep(0.1)

    # ----- lifecycle

    def _start(self) -> None:
        self.tmpdir.mkdir(parents=True, exist_ok=True)
        os.makedirs("/run/sshd", exist_ok=True)  # sshd's privilege separation directory
        tag = self._unique_tag()
        self.subnet = self._free_subnet()
        hosts = list(self.subnet.hosts())

        def addr(last: int) -> str:
            return str(hosts[last - 1])

        self.master_address = addr(1)
        self.nodes = [addr(10 + i) for i in range(1, self.node_count + 1)]
        self.firewalled = addr(21)
        self.password_node = addr(31)
        self.dead_address = addr(99)

        self.bridge = f"psbr{tag}"
        _run(["ip", "link", "add", self.bridge, "type", "bridge"])
        _run(["ip", "addr", "add", f"{self.master_address}/24", "dev", self.bridge])
        _run(["ip", "link", "set", self.bridge, "up"])

        roles = [(ip, f"n{i}") for i, ip in enumerate(self.nodes, 1)]
        roles += [(self.firewalled, "fw"), (self.password_node, "pw")]
        for k, (ip, role) in enumerate(roles):
            self._add_node(ip, ns=f"ps{tag}{role}", veth=f"ps{tag}v{k}")

        self._make_keys()
        key_config = self._sshd_config("key", port_line="Port 22", key_auth=True)
        pw_config = self._sshd_config("password", port_line="Port 22", key_auth=False)
        # A system sshd listening on *:22 (usual on a CI VM) makes master_address:22 unbindable;
        # then our master sshd listens on a free port and nftables (in a table of our own,
        # matching only our bridge address) sends master_address:22 there.
        if _can_bind(self.master_address, 22):
            self.master_sshd_port = 22
        else:
            self.master_sshd_port = _free_tcp_port(self.master_address)
            self._redirect_master_ssh(tag, self.master_sshd_port)
        master_config = self._sshd_config(
            "master", port_line=f"ListenAddress {self.master_address}:{self.master_sshd_port}",
            key_auth=True)

        self._firewall(self.firewalled)
        for ip in [*self.nodes, self.firewalled]:
            self._start_sshd(ip, key_config, netns=self._netns[ip])
        self._start_sshd(self.password_node, pw_config, netns=self._netns[self.password_node])
        self._start_sshd(self.master_address, master_config, netns=None)
        for ip, proc in self._sshd.items():
            logfile = self.tmpdir / f"sshd-{ip}.log"

            def ready(ip: str = ip, proc: subprocess.Popen[bytes] = proc,
                      logfile: Path = logfile) -> bool:
                if proc.poll() is not None:
                    raise DaemonDied(f"sshd for {ip} exited with {proc.returncode}\n"
                                     + _logs_report([logfile]))
                return _ssh_banner(ip, 22)

            _wait_for(ready, timeout=10, what=f"sshd on {ip}:22", logs=[logfile])

    def stop(self) -> None:
        """Kill every process in our namespaces and our master sshd (by PID), delete the
        namespaces, veth links and the bridge.  Safe to call twice and after a failed start."""
        errors: list[str] = []
        master = self._sshd.pop(self.master_address, None) if self.master_address else None
        if master is not None:
            _stop_popen(master)
        for ip, ns in list(self._netns.items()):
            try:
                pids = [int(p) for p in _run(["ip", "netns", "pids", ns], timeout=10).stdout.split()]
                _terminate(pids)
            except ClusterError as exc:
                errors.append(str(exc))
            proc = self._sshd.pop(ip, None)
            if proc is not None:
                _stop_popen(proc)
            try:
                _run(["ip", "netns", "del", ns], timeout=10)
                del self._netns[ip]
            except ClusterError as exc:
                errors.append(str(exc))
        for link in self._host_links[:]:
            # deleting the namespace normally took the veth pair with it
            # (asynchronously: it may vanish between the check and the delete)
            if Path(f"/sys/class/net/{link}").exists():
                proc = _run(["ip", "link", "del", link], timeout=10, check=False)
                if proc.returncode != 0 and Path(f"/sys/class/net/{link}").exists():
                    errors.append(f"ip link del {link}: {proc.stderr.strip()}")
            self._host_links.remove(link)
        if self._nft_table:
            proc = _run(["nft", "delete", "table", "ip", self._nft_table], timeout=10, check=False)
            if proc.returncode != 0:
                errors.append(f"nft delete table ip {self._nft_table}: {proc.stderr.strip()}")
            self._nft_table = ""
        if self.bridge and Path(f"/sys/class/net/{self.bridge}").exists():
            try:
                _run(["ip", "link", "del", self.bridge], timeout=10)
            except ClusterError as exc:
                errors.append(str(exc))
        if errors:
            raise ClusterError("ssh cluster teardown incomplete:\n" + "\n".join(errors))

    # ----- internals

    @staticmethod
    def _unique_tag() -> str:
        """A short tag for interface and namespace names (<= 15 chars): PID-based, plus a
        letter when a stale bridge of a dead session with the same PID is still around."""
        pid = os.getpid()
        for suffix in ["", *"abcdefghijklmnopqrstuvwxyz"]:
            tag = f"{pid}{suffix}"
            if not Path(f"/sys/class/net/psbr{tag}").exists():
                return tag
        raise ClusterError(f"no free bridge name psbr{pid}[a-z]")

    @staticmethod
    def _free_subnet() -> ipaddress.IPv4Network:
        """A 10.128.0.0/9 /24 that overlaps no address or route of the root namespace,
        starting at a PID-derived position so concurrent sessions pick different ones."""
        used: list[ipaddress.IPv4Network] = []
        for line in _run(["ip", "-4", "-o", "addr", "show"]).stdout.splitlines():
            fields = line.split()
            if "inet" in fields:
                used.append(ipaddress.ip_interface(fields[fields.index("inet") + 1]).network)
        for line in _run(["ip", "-4", "route", "show", "table", "all"]).stdout.splitlines():
            fields = line.split()
            if fields and fields[0] in ("broadcast", "local", "unicast", "multicast"):
                fields = fields[1:]
            if fields and fields[0] != "default":
                with contextlib.suppress(ValueError):
                    used.append(ipaddress.ip_network(fields[0], strict=False))
        count = 128 * 256
        start = (os.getpid() * 7919) % count
        for k in range(count):
            idx = (start + k) % count
            net = ipaddress.ip_network(f"10.{128 + idx // 256}.{idx % 256}.0/24")
            if not any(net.overlaps(u) for u in used):
                return net
        raise ClusterError("no free /24 in 10.128.0.0/9")

    def _redirect_master_ssh(self, tag: str, port: int) -> None:
        """DNAT master_address:22 to master_address:port, for connections from our nodes
        (prerouting, on our bridge) and from this namespace (output)."""
        table = f"pastset_{tag}"
        rules = self.tmpdir / "nft-master.conf"
        m = self.master_address
        rules.write_text(
            f"table ip {table} {{\n"
            "  chain prerouting {\n"
            "    type nat hook prerouting priority dstnat; policy accept;\n"
            f'    iifname "{self.bridge}" ip daddr {m} tcp dport 22 dnat to {m}:{port}\n'
            "  }\n"
            "  chain output {\n"
            "    type nat hook output priority -100; policy accept;\n"
            f"    ip daddr {m} tcp dport 22 dnat to {m}:{port}\n"
            "  }\n"
            "}\n")
        _run(["nft", "-f", str(rules)])
        self._nft_table = table

    def _add_node(self, ip: str, *, ns: str, veth: str) -> None:
        _run(["ip", "netns", "add", ns])
        self._netns[ip] = ns
        _run(["ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns])
        self._host_links.append(veth)
        _run(["ip", "link", "set", veth, "master", self.bridge, "up"])
        inside = ["ip", "netns", "exec", ns]
        _run([*inside, "ip", "addr", "add", f"{ip}/24", "dev", "eth0"])
        _run([*inside, "ip", "link", "set", "eth0", "up"])
        _run([*inside, "ip", "link", "set", "lo", "up"])

    def _make_keys(self) -> None:
        for name in ("ssh_host_ed25519_key", "id_ed25519"):
            path = self.tmpdir / name
            if not path.exists():
                _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"pastset-test-{name}",
                      "-f", str(path)])
        (self.tmpdir / "authorized_keys").write_text((self.tmpdir / "id_ed25519.pub").read_text())

    def _sshd_config(self, name: str, *, port_line: str, key_auth: bool) -> Path:
        # sshd without PAM refuses even key logins to an account whose password is locked
        # ("!..." in /etc/shadow, common for root); PAM's account check does not.
        try:
            root_locked = any(line.startswith("root:!") for line in
                              Path("/etc/shadow").read_text().splitlines())
        except OSError:
            root_locked = False
        lines = [
            port_line,
            f"HostKey {self.tmpdir / 'ssh_host_ed25519_key'}",
            f"AuthorizedKeysFile {self.tmpdir / 'authorized_keys'}",
            "PidFile none",
            "StrictModes no",          # keys live in a pytest tmpdir with default permissions
            "AllowTcpForwarding yes",  # the tunnel launcher forwards ports over ssh
            "PrintMotd no",
            "PrintLastLog no",
            "UseDNS no",
            "MaxStartups 100:30:200",  # launchers open many sessions at once
            "MaxSessions 100",
            "Subsystem sftp internal-sftp",
            f"UsePAM {'yes' if root_locked else 'no'}",
        ]
        if key_auth:
            lines += ["PermitRootLogin prohibit-password", "PubkeyAuthentication yes",
                      "PasswordAuthentication no", "KbdInteractiveAuthentication no"]
        else:
            lines += ["PermitRootLogin yes", "PubkeyAuthentication no",
                      "PasswordAuthentication yes", "KbdInteractiveAuthentication yes"]
        path = self.tmpdir / f"sshd_config.{name}"
        path.write_text("\n".join(lines) + "\n")
        return path

    def _start_sshd(self, ip: str, config: Path, *, netns: str | None) -> None:
        logfile = self.tmpdir / f"sshd-{ip}.log"
        argv = [_SSHD, "-D", "-f", str(config), "-E", str(logfile)]
        if netns is not None:
            argv = ["ip", "netns", "exec", netns, *argv]
        _run([_SSHD, "-t", "-f", str(config)])  # config errors surface here, clearly
        self._sshd[ip] = _spawn_daemon(argv, logfile)

    def _firewall(self, ip: str) -> None:
        rules = self.tmpdir / f"nft-{ip}.conf"
        rules.write_text(
            "table inet pastset_firewall {\n"
            "  chain output {\n"
            "    type filter hook output priority 0; policy accept;\n"
            "    ct state established,related accept\n"
            f"    ip daddr {self.master_address} tcp dport 22 accept\n"
            f"    ip daddr {self.master_address} drop\n"
            "  }\n"
            "}\n")
        _run(["ip", "netns", "exec", self._netns[ip], "nft", "-f", str(rules)])


@contextlib.contextmanager
def start_ssh_cluster(tmpdir: str | os.PathLike[str], nodes: int = 2) -> Iterator[SshCluster]:
    """Context manager: a started :class:`SshCluster`, torn down on exit."""
    with SshCluster(tmpdir, nodes=nodes) as cluster:
        yield cluster


# --------------------------------------------------------------------------------------------
# SLURM

class SlurmCluster(_Cluster):
    """A one-node SLURM cluster (munged + slurmctld + slurmd) with a private config.

    Everything lives under ``tmpdir``: munge key and socket, slurm.conf, state and spool
    directories, logs.  Ports are free ones picked at start, so sessions do not collide.
    Commands (srun, sbatch, squeue ...) find this cluster through ``env`` (SLURM_CONF); the
    munge socket is named in slurm.conf (AuthInfo), so no other variable is needed.
    """

    BINARIES = ("munged", "slurmctld", "slurmd", "srun", "sbatch", "squeue", "scancel", "sinfo")

    def __init__(self, tmpdir: str | os.PathLike[str]) -> None:
        self.dir = Path(tmpdir)
        self.conf_path = self.dir / "slurm.conf"
        self.hostname = socket.gethostname()
        self.env: dict[str, str] = {"SLURM_CONF": str(self.conf_path)}
        # Marker in the daemons' environment: slurmstepd processes (forked by slurmd, then
        # detached) inherit it, which is how stop() finds the ones that belong to this cluster.
        self._marker = f"PASTSET_TEST_SLURM={secrets.token_hex(8)}"
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._started = False

    @property
    def logs(self) -> list[Path]:
        return [self.dir / n for n in ("munged.log", "slurmctld.log", "slurmd.log")]

    def command_env(self) -> dict[str, str]:
        """os.environ plus ``env``: the environment to run slurm commands with."""
        return {**os.environ, **self.env}

    def queue(self) -> list[str]:
        """Ids of the jobs in squeue (pending, running, completing)."""
        out = _run(["squeue", "-h", "-o", "%i"], env=self.command_env(), timeout=15).stdout
        return out.split()

    def _start(self) -> None:
        d = self.dir
        for sub in ("state", "spool"):
            (d / sub).mkdir(parents=True, exist_ok=True)
        key = d / "munge.key"
        key.write_bytes(secrets.token_bytes(1024))
        key.chmod(0o400)
        sock = d / "munge.sock"
        daemon_env = {**os.environ, **self.env}
        name, _, value = self._marker.partition("=")
        daemon_env[name] = value

        self._procs["munged"] = _spawn_daemon(
            ["munged", "--foreground", "--force", "-S", str(sock), f"--key-file={key}",
             f"--log-file={d / 'munged.log'}", f"--pid-file={d / 'munged.pid'}",
             f"--seed-file={d / 'munged.seed'}"], d / "munged.log", daemon_env)
        self._wait_alive("munged", lambda: sock.exists(), "the munge socket")

        ctld_port = _free_tcp_port()
        slurmd_port = _free_tcp_port()
        while slurmd_port == ctld_port:
            slurmd_port = _free_tcp_port()
        cpus = os.cpu_count() or 1
        self.conf_path.write_text(f"""\
ClusterName=pstest
SlurmctldHost={self.hostname}(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={sock}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
StateSaveLocation={d / 'state'}
SlurmdSpoolDir={d / 'spool'}
SlurmctldPidFile={d / 'slurmctld.pid'}
SlurmdPidFile={d / 'slurmd.pid'}
SlurmctldLogFile={d / 'slurmctld.log'}
SlurmdLogFile={d / 'slurmd.log'}
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
ReturnToService=2
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
KillWait=2
MinJobAge=2
NodeName={self.hostname} NodeAddr=127.0.0.1 CPUs={cpus} State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
""")
        # -D: stay in the foreground, so the PID we hold is the daemon's own
        self._procs["slurmctld"] = _spawn_daemon(
            ["slurmctld", "-D", "-i", "-f", str(self.conf_path)], d / "slurmctld.out", daemon_env)
        self._wait_alive("slurmctld", lambda: _port_open("127.0.0.1", ctld_port),
                         f"slurmctld on port {ctld_port}")
        self._procs["slurmd"] = _spawn_daemon(
            ["slurmd", "-D", "-f", str(self.conf_path)], d / "slurmd.out", daemon_env)

        def node_idle() -> bool:
            out = _run(["sinfo", "-h", "-o", "%T"], env=self.command_env(), timeout=10).stdout
            return out.strip().rstrip("*") == "idle"

        self._wait_alive("slurmd", node_idle, f"node {self.hostname} to be idle", timeout=30)

    def _wait_alive(self, name: str, ready: Callable[[], object], what: str,
                    timeout: float = 20) -> None:
        proc = self._procs[name]

        def check() -> object:
            if proc.poll() is not None:
                raise DaemonDied(f"{name} exited with {proc.returncode}\n"
                                   + _logs_report([*self.logs, self.dir / f"{name}.out"]))
            return ready()

        _wait_for(check, timeout=timeout, what=what,
                  logs=[*self.logs, self.dir / f"{name}.out"])

    def stop(self) -> None:
        """Cancel every job, then stop slurmd, slurmctld, stray slurmstepds, munged -- by PID."""
        if "slurmctld" in self._procs and self._procs["slurmctld"].poll() is None:
            with contextlib.suppress(ClusterError):
                jobs = self.queue()
                if jobs:
                    _run(["scancel", *jobs], env=self.command_env(), timeout=15, check=False)
                    with contextlib.suppress(ClusterError):
                        _wait_for(lambda: not self.queue(), timeout=15,
                                  what=f"jobs {jobs} to leave the queue")
        for name in ("slurmd", "slurmctld"):
            proc = self._procs.pop(name, None)
            if proc is not None:
                _stop_popen(proc)
        strays = self._marked_processes()
        for pid in strays:
            strays.extend(q for q in _descendants(pid) if q not in strays)
        _terminate(strays)
        proc = self._procs.pop("munged", None)
        if proc is not None:
            _stop_popen(proc)

    def _marked_processes(self) -> list[int]:
        """PIDs whose environment carries this cluster's marker (slurmstepd and the like)."""
        marker = self._marker.encode()
        found = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) == os.getpid():
                continue
            try:
                with open(f"/proc/{entry}/environ", "rb") as f:
                    if marker in f.read().split(b"\0"):
                        found.append(int(entry))
            except OSError:
                continue
        return found


@contextlib.contextmanager
def start_slurm_cluster(tmpdir: str | os.PathLike[str]) -> Iterator[SlurmCluster]:
    """Context manager: a started :class:`SlurmCluster`, torn down on exit."""
    with SlurmCluster(tmpdir) as cluster:
        yield cluster


# --------------------------------------------------------------------------------------------
# Son of Grid Engine

_SGE_ROOT = "/var/lib/gridengine"
_SGE_CELL = "default"
_SGE_SPOOL = Path("/var/spool/gridengine")
_SGE_LOCK = "/run/lock/pastset-test-sge.lock"

_SGE_PE = """\
pe_name            smp
slots              999
user_lists         NONE
xuser_lists        NONE
start_proc_args    NONE
stop_proc_args     NONE
allocation_rule    $round_robin
control_slaves     TRUE
job_is_first_task  FALSE
urgency_slots      min
accounting_summary FALSE
qsort_args         NONE
"""

_SGE_QUEUE = """\
qname                 all.q
hostlist              {host}
seq_no                0
load_thresholds       NONE
suspend_thresholds    NONE
nsuspend              1
suspend_interval      00:05:00
priority              0
min_cpu_interval      00:05:00
processors            UNDEFINED
qtype                 BATCH INTERACTIVE
ckpt_list             NONE
pe_list               smp
rerun                 FALSE
slots                 8
tmpdir                /tmp
shell                 /bin/sh
prolog                NONE
epilog                NONE
shell_start_mode      posix_compliant
starter_method        NONE
suspend_method        NONE
resume_method         NONE
terminate_method      NONE
notify                00:00:60
owner_list            NONE
user_lists            NONE
xuser_lists           NONE
subordinate_list      NONE
complex_values        NONE
projects              NONE
xprojects             NONE
calendar              NONE
initial_state         default
s_rt                  INFINITY
h_rt                  INFINITY
s_cpu                 INFINITY
h_cpu                 INFINITY
s_fsize               INFINITY
h_fsize               INFINITY
s_data                INFINITY
h_data                INFINITY
s_stack               INFINITY
h_stack               INFINITY
s_core                INFINITY
h_core                INFINITY
s_rss                 INFINITY
h_rss                 INFINITY
s_vmem                INFINITY
h_vmem                INFINITY
"""


class SgeCluster(_Cluster):
    """A one-node Son of Grid Engine (Debian's gridengine-* packages): qmaster + execd.

    Grid Engine's paths (SGE_ROOT=/var/lib/gridengine, spool under /var/spool/gridengine) and
    ports (6444/6445 from /etc/services) are fixed, so there is one per machine: a lock file
    serialises test sessions, a qmaster/execd still running from an earlier (crashed) session is
    reused, and ``stop()`` always stops both daemons (by the PID files they write) so the
    machine is left clean.  Configuration (root may run jobs, a 1-second scheduler, parallel
    environment ``smp`` with ``control_slaves TRUE`` for ``qrsh -inherit``, queue ``all.q``
    on this host) follows recipes/sge-single-node.sh and is re-applied each time (idempotent).
    """

    BINARIES = ("/usr/sbin/sge_qmaster", "/usr/sbin/sge_execd", "qconf", "qstat", "qsub",
                "qrsh", "qdel")

    def __init__(self, lock_timeout: float = 300) -> None:
        self.hostname = socket.gethostname()
        bindir = os.path.dirname(shutil.which("qsub") or "/usr/bin/qsub")
        path = os.environ.get("PATH", "")
        if bindir not in path.split(os.pathsep):
            path = os.pathsep.join([bindir, path]) if path else bindir
        self.env: dict[str, str] = {"SGE_ROOT": _SGE_ROOT, "SGE_CELL": _SGE_CELL, "PATH": path}
        self.qmaster_pid_file = _SGE_SPOOL / "qmaster" / "qmaster.pid"
        self.reused = False
        self._lock_timeout = lock_timeout
        self._lock_fd: int | None = None
        self._workdir: tempfile.TemporaryDirectory[str] | None = None
        self._started = False

    @staticmethod
    def execd_pid_files() -> list[Path]:
        """PID files of execds.  The spool directory is named after the name the execd's
        address resolves to (e.g. ``localhost``), not necessarily after the hostname."""
        return sorted((_SGE_SPOOL / "execd").glob("*/execd.pid"))

    @property
    def logs(self) -> list[Path]:
        return [_SGE_SPOOL / "qmaster" / "messages",
                *sorted((_SGE_SPOOL / "execd").glob("*/messages"))]

    def command_env(self) -> dict[str, str]:
        """os.environ plus ``env``: the environment to run qsub/qstat/qconf with."""
        return {**os.environ, **self.env}

    def _q(self, *argv: str, timeout: float = 30, check: bool = True,
           cwd: str | None = None) -> subprocess.CompletedProcess[str]:
        return _run(argv, env=self.command_env(), timeout=timeout, check=check, cwd=cwd)

    def queue(self) -> list[str]:
        """Ids of all users' jobs known to qstat (pending, running, being deleted)."""
        out = self._q("qstat", "-u", "*", timeout=15).stdout
        ids = []
        for line in out.splitlines():
            fields = line.split()
            if fields and fields[0].isdigit():
                ids.append(fields[0])
        return ids

    def _start(self) -> None:
        self._lock()
        self._workdir = tempfile.TemporaryDirectory(prefix="pastset-sge-")
        w = Path(self._workdir.name)
        host = self.hostname
        try:
            socket.gethostbyname(host)
        except OSError:
            raise ClusterError(f"hostname {host!r} does not resolve; Grid Engine needs it") from None
        common = Path(_SGE_ROOT) / _SGE_CELL / "common"
        if not (common / "bootstrap").exists():
            raise ClusterError(f"{common}/bootstrap missing: the gridengine-master postinst did "
                               "not initialise the cell (see .ci/system-packages.sh)")
        # 127.0.0.1 reverse-resolves to the first name on its /etc/hosts line (e.g. localhost),
        # while clients announce themselves by hostname: commlib then denies access unless all
        # those names are aliases of one host.
        aliases = []
        with contextlib.suppress(OSError):
            for line in Path("/etc/hosts").read_text().splitlines():
                fields = line.split("#", 1)[0].split()
                if fields and fields[0].startswith("127."):
                    aliases += [n for n in fields[1:] if n != host and n not in aliases]
        self._write_sge_file(common / "host_aliases", " ".join([host, *aliases]) + "\n")
        self._write_sge_file(common / "act_qmaster", host + "\n")

        if self._qmaster_answers():
            self.reused = True
            log.info("reusing the running sge_qmaster")
        else:
            self._q("/usr/sbin/sge_qmaster", timeout=30)  # daemonizes, writes its PID file
        _wait_for(self._qmaster_answers, timeout=30, what="sge_qmaster to answer qstat",
                  logs=self.logs, interval=0.5)

        # root may run jobs (default min_uid/min_gid 1000); scheduler runs every second
        conf = self._q("qconf", "-sconf", "global").stdout
        (w / "global").write_text(_replace_keys(conf, {"min_uid": "0", "min_gid": "0"}))
        self._q("qconf", "-Mconf", "global", cwd=str(w))   # file name must be the config name
        sched = self._q("qconf", "-ssconf").stdout
        (w / "sched.conf").write_text(_replace_keys(sched, {
            "schedule_interval": "0:0:1", "flush_submit_sec": "1", "flush_finish_sec": "1"}))
        self._q("qconf", "-Msconf", str(w / "sched.conf"))
        self._q("qconf", "-as", host, check=False)          # submit host (may already be one)
        (w / "pe.conf").write_text(_SGE_PE)
        if self._q("qconf", "-Ap", str(w / "pe.conf"), check=False).returncode != 0:
            self._q("qconf", "-Mp", str(w / "pe.conf"))
        (w / "all.q.conf").write_text(_SGE_QUEUE.format(host=host))
        if self._q("qconf", "-Aq", str(w / "all.q.conf"), check=False).returncode != 0:
            self._q("qconf", "-Mq", str(w / "all.q.conf"))

        # execd caches the global config: (re)start it after min_uid changed
        if not any(self._pid_alive(f) for f in self.execd_pid_files()):
            self._q("/usr/sbin/sge_execd", timeout=30)
        _wait_for(self._queue_instance_up, timeout=60, what=f"queue instance all.q@{host}",
                  logs=self.logs, interval=0.5)

    def _lock(self) -> None:
        """Hold an exclusive lock for the session: Grid Engine is one per machine."""
        fd = os.open(_SGE_LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + self._lock_timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    raise ClusterError(f"{_SGE_LOCK} held by another test session for "
                                       f"{self._lock_timeout} s") from None
                time.sleep(0.5)
        self._lock_fd = fd

    @staticmethod
    def _write_sge_file(path: Path, text: str) -> None:
        path.write_text(text)
        with contextlib.suppress(KeyError, OSError):
            shutil.chown(path, "sgeadmin", "sgeadmin")

    def _qmaster_answers(self) -> bool:
        try:
            return self._q("qstat", timeout=5, check=False).returncode == 0
        except ClusterError:
            return False

    def _queue_instance_up(self) -> bool:
        # qstat -f line: "all.q@vm  BIP  0/0/8  0.10  lx-amd64  [states]"; load "-NA-" until
        # execd reported, states (a, u, E ...) while not usable
        out = self._q("qstat", "-f", "-q", "all.q", timeout=10, check=False).stdout
        for line in out.splitlines():
            fields = line.split()
            if fields and fields[0].startswith("all.q@"):
                return len(fields) == 5 and fields[3] != "-NA-"   # no state column
        return False

    @staticmethod
    def _read_pid(path: Path) -> int | None:
        try:
            return int(path.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def _pid_alive(self, path: Path) -> bool:
        pid = self._read_pid(path)
        return pid is not None and _alive(pid)

    def stop(self) -> None:
        """Delete every job, stop execd and qmaster by their PID files, release the lock."""
        try:
            if self._lock_fd is not None and self._qmaster_answers():
                with contextlib.suppress(ClusterError):
                    jobs = self.queue()
                    if jobs:
                        self._q("qdel", "-f", *jobs, timeout=15, check=False)
                        _wait_for(lambda: not self.queue(), timeout=20,
                                  what=f"jobs {jobs} to leave the queue", interval=0.5)
            if self._lock_fd is not None:
                # The daemons' own controlled shutdown (qconf -ke / -km) keeps the BerkeleyDB
                # spool consistent; sge_qmaster needs ~9 s for it (its threads stop one after
                # the other on 1-second timers).  Signals are the fallback for a daemon that
                # no longer answers.
                pids = [self._read_pid(f) for f in [*self.execd_pid_files(),
                                                     self.qmaster_pid_file]]
                live = [p for p in pids if p is not None and _alive(p)]
                if live and self._qmaster_answers():
                    with contextlib.suppress(ClusterError):
                        self._q("qconf", "-ke", "all", timeout=10, check=False)
                        self._q("qconf", "-km", timeout=10, check=False)
                    deadline = time.monotonic() + 20
                    while time.monotonic() < deadline and any(_alive(p) for p in live):
                        time.sleep(0.1)
                _terminate([p for p in live if _alive(p)], grace=15)
        finally:
            if self._workdir is not None:
                self._workdir.cleanup()
                self._workdir = None
            if self._lock_fd is not None:
                os.close(self._lock_fd)   # releases the flock
                self._lock_fd = None


def _replace_keys(config: str, values: Mapping[str, str]) -> str:
    """Set ``key value`` lines of a Grid Engine config dump."""
    out = []
    for line in config.splitlines():
        key = line.split(None, 1)[0] if line.strip() else ""
        out.append(f"{key} {values[key]}" if key in values else line)
    return "\n".join(out) + "\n"


@contextlib.contextmanager
def start_sge_cluster() -> Iterator[SgeCluster]:
    """Context manager: a started :class:`SgeCluster`, stopped (daemons killed) on exit."""
    with SgeCluster() as cluster:
        yield cluster
