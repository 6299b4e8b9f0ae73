#!/bin/bash
# Research tool (h/nftshape): see README.md. Times nft -f of each VARIANT.nft (1 tx x3, 10 tx),
# its VARIANT.chg1.nft / VARIANT.chg3.nft one-service changes, listing, and reload of the listing.
# usage: bench.sh VARIANT...  — times nft in fresh namespaces svcnat-shape-$$-N, removed on exit.
cd "${SHAPE_DIR:-/tmp/shape}"
N=0; NSS=()
cleanup(){ for n in "${NSS[@]}"; do ip netns del "$n" 2>/dev/null; done; }
trap cleanup EXIT
newns(){ N=$((N+1)); NS=svcnat-shape-$$-$N; ip netns add $NS; NSS+=($NS); }
delns(){ ip netns del $NS; }
t(){ /usr/bin/time -f "%e/%U/%S" -o tm.$$ "$@" >/dev/null || echo "FAIL: $*" >&2; awk -F/ '{printf "%.2f/%.2f\n", $1, $2+$3}' tm.$$; }
med(){ printf '%s\n' "$@" | sort -t/ -k2 -n | sed -n 2p; }
for V in "$@"; do
  loads=(); tens=()
  for r in 1 2 3; do
    newns; loads+=($(t ip netns exec $NS nft -f $V.nft))
    if [ $r = 1 ]; then
      c1=$(t ip netns exec $NS nft -f $V.chg1.nft); c3=$(t ip netns exec $NS nft -f $V.chg3.nft)
      l=$(t ip netns exec $NS nft list table ip svcnat); j=$(t ip netns exec $NS nft -j list table ip svcnat)
      ip netns exec $NS nft list table ip svcnat > $V.list
      ip netns exec $NS nft -j list table ip svcnat > $V.json
    fi
    delns
    [ $r = 1 ] || continue
    newns; split -n l/10 -d $V.nft $V.part.; s=$(date +%s.%N)
    for p in $V.part.0*; do ip netns exec $NS nft -f $p || echo "FAIL part $p" >&2; done
    tens+=($(echo "$(date +%s.%N) - $s" | bc | cut -c1-5)); rm -f $V.part.0*; delns
  done
  newns; rt=$(t ip netns exec $NS nft -f $V.list); ip netns exec $NS nft list table ip svcnat > $V.list2
  if cmp -s $V.list $V.list2; then rtok=identical; else rtok="DIFF($(diff $V.list $V.list2 | grep -c '^[<>]'))"; fi
  delns
  echo "$V load1tx=$(med ${loads[@]}) [${loads[*]}] load10tx=${tens[0]} chg-plain=$c1 chg-aff=$c3 list=$l listjson=$j reload-listing=$rt roundtrip=$rtok"
done
