#!/usr/bin/env bash
# Installs the peers `npm run bench` measures Underpass against, from the Debian archive:
# microsocks, Dante (danted), OpenSSH (server and client), iperf3, vsftpd and curl. Idempotent: packages
# already present are left alone, and apt-get runs only when something is missing.
#
# Usage: scripts/install-bench-peers.sh [--force]   (--force runs apt-get install regardless)
set -euo pipefail

# Daemons live in /usr/sbin, which a non-root PATH may lack.
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

log() { printf '==> %s\n' "$*" >&2; }

as_root() {
  if [[ $(id -u) -eq 0 ]]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo -n "$@"
  else
    log "need root (or sudo) for: $*"
    return 1
  fi
}

# command → Debian package
declare -A PACKAGE_OF=(
  [microsocks]=microsocks
  [danted]=dante-server
  [sshd]=openssh-server
  [ssh]=openssh-client
  [ssh-keygen]=openssh-client
  [iperf3]=iperf3
  [vsftpd]=vsftpd
  [curl]=curl
  [openssl]=openssl
  [haproxy]=haproxy
)

missing=()
for cmd in "${!PACKAGE_OF[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${PACKAGE_OF[$cmd]}")
done
# the cluster peer's database: Debian keeps the server's binaries off PATH
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || missing+=(postgresql)

if [[ ${#missing[@]} -eq 0 && "${1:-}" != "--force" ]]; then
  log "bench peers already installed"
  exit 0
fi

# One package may be named by several commands; --force installs them all.
if [[ ${#missing[@]} -eq 0 ]]; then missing=("${PACKAGE_OF[@]}" postgresql); fi
mapfile -t packages < <(printf '%s\n' "${missing[@]}" | sort -u)
log "installing: ${packages[*]}"
export DEBIAN_FRONTEND=noninteractive
# iperf3 asks whether to start a system daemon; the bench starts its own peers.
echo "iperf3 iperf3/start_daemon boolean false" | as_root debconf-set-selections
# Another apt-get may hold the dpkg lock for a while: wait for it rather than fail.
apt_install() { as_root apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends "$@"; }
apt_install "${packages[@]}" || {
  log "apt-get install failed; refreshing the package lists and trying again"
  as_root apt-get -o DPkg::Lock::Timeout=600 update
  apt_install "${packages[@]}"
}

# Debian's openssh-server may start a system sshd (not in containers without systemd);
# the bench runs a private sshd with its own config and port and never needs that one.
# sshd refuses to start without its privilege-separation directory.
as_root mkdir -p /run/sshd
as_root chmod 0755 /run/sshd
# Debian's dante-server may start a system danted on its default config; the bench runs its own
# on a private config and port, and never needs that one.
log "bench peers installed"
