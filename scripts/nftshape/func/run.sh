#!/bin/bash
# functional check in namespaces svcnat-shape-$$-c / -s, removed on exit
C=svcnat-shape-$$-c; S=svcnat-shape-$$-s; SP=
cleanup(){ [ -n "$SP" ] && kill $SP 2>/dev/null; ip netns del $C 2>/dev/null; ip netns del $S 2>/dev/null; }
trap cleanup EXIT
set -e
ip netns add $C; ip netns add $S
ip link add vc netns $C type veth peer name vs netns $S
ip -n $C addr add 10.0.0.2/24 dev vc; for i in 3 4 5 6; do ip -n $C addr add 10.0.0.$i/24 dev vc; done
ip -n $S addr add 10.0.0.1/24 dev vs; ip -n $C link set vc up; ip -n $S link set vs up; ip -n $C link set lo up; ip -n $S link set lo up
ip -n $C route add 10.96.0.0/16 via 10.0.0.1
for i in 1 2 3; do ip -n $S addr add 10.64.0.$i/32 dev lo; done
ip netns exec $S python3 server.py & SP=$!
sed "s/TMO/${TMO:-10800}/" table.nft > t.nft
ip netns exec $S nft -f t.nft
if [ "$ROUNDTRIP" = 1 ]; then ip netns exec $S nft list table ip svcnat > rt.nft; ip netns exec $S nft delete table ip svcnat; ip netns exec $S nft -f rt.nft; echo "reloaded from listing"; fi
sleep 0.5
CL="ip netns exec $C python3 client.py"
echo "plain (shared map, offset) 300 conns:"; $CL 10.96.0.1 300 10.0.0.2
echo "kube-proxy anon map 300 conns:"; $CL 10.96.0.3 300 10.0.0.2
echo "dispatch by vip 300:"; $CL 10.96.0.5 300 10.0.0.2
echo "affinity 5 clients x 20:"; $CL 10.96.0.2 20 10.0.0.2,10.0.0.3,10.0.0.4,10.0.0.5,10.0.0.6
ip netns exec $S nft list set ip svcnat affinity
if [ -n "$TMO" ]; then
  echo "refresh: client .2 every $((TMO-1))s x3 (timeout ${TMO}s):"; for k in 1 2 3; do sleep $((TMO-1)); $CL 10.96.0.2 1 10.0.0.2; done
  sleep $((TMO+1)); echo "after $((TMO+1))s idle:"; ip netns exec $S nft list set ip svcnat affinity
  echo "re-pick after expiry, 5 clients x 3 (new endpoint random):"; $CL 10.96.0.2 3 10.0.0.2,10.0.0.3,10.0.0.4,10.0.0.5,10.0.0.6
fi
