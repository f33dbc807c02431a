"""sshd "hosts" in network namespaces off a private Linux bridge, for the ssh and tunnel tests."""

from __future__ import annotations

import contextlib
import ipaddress
import os
import shlex
import socket
import subprocess
import sys
from pathlib import Path
from typing import Iterator, Sequence

from .base import (
    Cluster,
    ClusterError,
    DaemonDied,
    free_tcp_port,
    logs_report,
    run_command,
    spawn_daemon,
    stop_popen,
    terminate,
    wait_for,
)
from helpers import procs
from helpers.polling import wait_empty


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


_SSHD = "/usr/sbin/sshd"


class SshCluster(Cluster):
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
        out = run_command(["ip", "netns", "pids", ns], timeout=10).stdout.split()
        listener = self._sshd.get(ip)
        result = []
        for token in out:
            pid = int(token)
            if listener is not None and pid == listener.pid:
                continue
            if not procs.alive(pid):
                continue
            result.append((pid, procs.cmdline(pid)))
        return result

    def wait_no_processes(self, ip: str, timeout: float = 5.0) -> list[tuple[int, str]]:
        """Wait (bounded) until ``processes_on(ip)`` is empty; return what is left at the end
        (empty list = clean).  sshd session processes need a moment to go after a disconnect."""
        return wait_empty(lambda: self.processes_on(ip), timeout, 0.1)

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
        run_command(["ip", "link", "add", self.bridge, "type", "bridge"])
        run_command(["ip", "addr", "add", f"{self.master_address}/24", "dev", self.bridge])
        run_command(["ip", "link", "set", self.bridge, "up"])

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
            self.master_sshd_port = free_tcp_port(self.master_address)
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
                                     + logs_report([logfile]))
                return _ssh_banner(ip, 22)

            wait_for(ready, timeout=10, what=f"sshd on {ip}:22", logs=[logfile])

    def stop(self) -> None:
        """Kill every process in our namespaces and our master sshd (by PID), delete the
        namespaces, veth links and the bridge.  Safe to call twice and after a failed start."""
        errors: list[str] = []
        master = self._sshd.pop(self.master_address, None) if self.master_address else None
        if master is not None:
            stop_popen(master)
        for ip, ns in list(self._netns.items()):
            try:
                pids = [int(p) for p in run_command(["ip", "netns", "pids", ns], timeout=10).stdout.split()]
                terminate(pids)
            except ClusterError as exc:
                errors.append(str(exc))
            proc = self._sshd.pop(ip, None)
            if proc is not None:
                stop_popen(proc)
            try:
                run_command(["ip", "netns", "del", ns], timeout=10)
                del self._netns[ip]
            except ClusterError as exc:
                errors.append(str(exc))
        for link in self._host_links[:]:
            # deleting the namespace normally took the veth pair with it
            # (asynchronously: it may vanish between the check and the delete)
            if Path(f"/sys/class/net/{link}").exists():
                proc = run_command(["ip", "link", "del", link], timeout=10, check=False)
                if proc.returncode != 0 and Path(f"/sys/class/net/{link}").exists():
                    errors.append(f"ip link del {link}: {proc.stderr.strip()}")
            self._host_links.remove(link)
        if self._nft_table:
            proc = run_command(["nft", "delete", "table", "ip", self._nft_table], timeout=10, check=False)
            if proc.returncode != 0:
                errors.append(f"nft delete table ip {self._nft_table}: {proc.stderr.strip()}")
            self._nft_table = ""
        if self.bridge and Path(f"/sys/class/net/{self.bridge}").exists():
            try:
                run_command(["ip", "link", "del", self.bridge], timeout=10)
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
        for line in run_command(["ip", "-4", "-o", "addr", "show"]).stdout.splitlines():
            fields = line.split()
            if "inet" in fields:
                used.append(ipaddress.ip_interface(fields[fields.index("inet") + 1]).network)
        for line in run_command(["ip", "-4", "route", "show", "table", "all"]).stdout.splitlines():
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
        run_command(["nft", "-f", str(rules)])
        self._nft_table = table

    def _add_node(self, ip: str, *, ns: str, veth: str) -> None:
        run_command(["ip", "netns", "add", ns])
        self._netns[ip] = ns
        run_command(["ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns])
        self._host_links.append(veth)
        run_command(["ip", "link", "set", veth, "master", self.bridge, "up"])
        inside = ["ip", "netns", "exec", ns]
        run_command([*inside, "ip", "addr", "add", f"{ip}/24", "dev", "eth0"])
        run_command([*inside, "ip", "link", "set", "eth0", "up"])
        run_command([*inside, "ip", "link", "set", "lo", "up"])

    def _make_keys(self) -> None:
        for name in ("ssh_host_ed25519_key", "id_ed25519"):
            path = self.tmpdir / name
            if not path.exists():
                run_command(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"pastset-test-{name}",
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
        run_command([_SSHD, "-t", "-f", str(config)])  # config errors surface here, clearly
        self._sshd[ip] = spawn_daemon(argv, logfile)

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
        run_command(["ip", "netns", "exec", self._netns[ip], "nft", "-f", str(rules)])


@contextlib.contextmanager
def start_ssh_cluster(tmpdir: str | os.PathLike[str], nodes: int = 2) -> Iterator[SshCluster]:
    """Context manager: a started :class:`SshCluster`, torn down on exit."""
    with SshCluster(tmpdir, nodes=nodes) as cluster:
        yield cluster

