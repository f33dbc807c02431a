#!/bin/bash
# System packages the integration tests need (sshd, netns + nftables, SLURM + munge, Grid Engine,
# a terminal, a browser, tcpdump).
#
# Run as root by CI before the tests, on a fresh Debian 12 machine or on one where this already
# ran: when every package is installed it only checks and exits.  Measured on a Debian 12 VM
# (2 cores) with none of them installed: 9 s (apt-get update + download + install of ~30
# packages) before chromium; chromium and chromium-driver bring ~130 packages more (their
# libraries), a few minutes on that VM; when already installed: 0.1 s.
#
# Package selection, and why SLURM and Grid Engine coexist:
# - Both `slurm-wlm-torque` (SLURM's PBS/Torque wrappers) and `gridengine-client` ship
#   /usr/bin/qsub, so they conflict.  Nothing needs slurm-wlm-torque: `slurm-wlm` only depends on
#   slurmd + slurmctld + slurm-client, and the PBS launcher tests use a nodefile + ssh (Debian 12
#   has no PBS server).  So we never install it, and install with --no-install-recommends, which
#   also skips slurm-wlm-plugins (+ ~20 *-dev/plugin packages, hdf5, rocm ...) that we do not use.
#   `qsub` is then Grid Engine's; SLURM is used through srun/sbatch/squeue/scancel only.
# - gridengine-common needs a mailx, whose mail-transport-agent would default to exim4 (a
#   listening daemon).  `dma` is a tiny MTA without a listening daemon and satisfies it.
# - Package maintainer scripts must not start daemons (system sshd on :22 would take the port
#   the tests' master-side sshd binds on the bridge address; sge_qmaster/munged/slurmctld would
#   run with system config).  We install a temporary policy-rc.d that forbids starting services,
#   unless one already exists, and remove it afterwards.
set -euo pipefail

if [ "$(id -u)" != 0 ]; then
    echo "system-packages.sh: must run as root" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive

PACKAGES=(
    openssh-server openssh-client   # sshd per network namespace, ssh client for the launcher
    iproute2 nftables               # bridge, veth, netns; firewall inside a node's namespace
    procps                          # pgrep/ps used by tests and by gridengine scripts
    munge slurm-wlm                 # slurmctld, slurmd, srun, sbatch, squeue, scancel
    gridengine-master gridengine-exec gridengine-client   # Son of Grid Engine 8.1.9
    dma                             # MTA for gridengine-common's mailx, without a daemon
    tmux                            # a real terminal for the `pastset top` tests
    chromium chromium-driver        # a real browser for the dashboard tests (driven by Selenium)
    tcpdump                         # what crosses the wire: the TLS capture test
)

# sshd refuses to start without its privilege-separation directory (normally made by systemd;
# /run is a tmpfs, so this is needed again after a reboot even when nothing is installed).
mkdir -p /run/sshd

missing=()
for p in "${PACKAGES[@]}"; do
    status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
    [ "$status" = installed ] || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
    echo "system-packages.sh: all ${#PACKAGES[@]} packages already installed"
    exit 0
fi
echo "system-packages.sh: installing ${missing[*]}"

# gridengine-common asks (debconf) whether to configure the cell automatically and which host is
# the master; preseed so its postinst runs init_cluster non-interactively for this host.
HOST=$(hostname)
debconf-set-selections <<EOF
gridengine-common shared/gridengineconfig boolean true
gridengine-common shared/gridenginecell string default
gridengine-common shared/gridenginemaster string $HOST
EOF

POLICY=/usr/sbin/policy-rc.d
made_policy=""
if [ ! -e "$POLICY" ]; then
    printf '#!/bin/sh\n# temporary, from pastset .ci/system-packages.sh: do not start services\nexit 101\n' >"$POLICY"
    chmod 755 "$POLICY"
    made_policy=1
fi
cleanup() { if [ -n "$made_policy" ]; then rm -f "$POLICY"; fi; }
trap cleanup EXIT

timeout 300 apt-get update -qq
timeout 900 apt-get install -y -qq --no-install-recommends \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
    "${PACKAGES[@]}"

echo "system-packages.sh: done"
