#!/usr/bin/env bash
# Installs what svcnat's tests and demo drive (iptables on both backends,
# nftables, iproute2; conntrack, with which tests and the demo inspect entries: svcnat
# itself deletes them over netlink) from Debian's packages when missing.
set -euo pipefail
need=()
command -v iptables-nft-restore >/dev/null 2>&1 || need+=(iptables)
command -v iptables-legacy-restore >/dev/null 2>&1 || need+=(iptables)
command -v ip >/dev/null 2>&1 || need+=(iproute2)
command -v conntrack >/dev/null 2>&1 || need+=(conntrack)
command -v dot >/dev/null 2>&1 || need+=(graphviz) # tests render svcnat graph
command -v patch >/dev/null 2>&1 || need+=(patch)   # tests apply fmt -diff's output
command -v groff >/dev/null 2>&1 || need+=(groff-base) # tests check the man page
command -v nft >/dev/null 2>&1 || need+=(nftables) # the nftables renderer's kernel test loads its goldens
((${#need[@]})) || exit 0
if [[ $(id -u) -ne 0 ]]; then
  echo "svcnat: missing ${need[*]}; run as root (or install them) to continue" >&2
  exit 1
fi
echo "installing ${need[*]} ..."
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
