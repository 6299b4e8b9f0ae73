#!/bin/bash
C=svcnat-shape-$$-c; S=svcnat-shape-$$-s; SP=
cleanup(){ [ -n "$SP" ] && kill $SP 2>/dev/null; ip netns del $C 2>/dev/null; ip netns del $S 2>/dev/null; }
trap cleanup EXIT
set -e
ip netns add $C; ip netns add $S
ip link add vc netns $C type veth peer name vs netns $S
ip -n $C addr add 10.0.0.2/24 dev vc; ip -n $S addr add 10.0.0.1/24 dev vs; ip -n $C link set vc up; ip -n $S link set vs up; ip -n $C link set lo up; ip -n $S link set lo up
ip -n $C route add 10.96.0.0/16 via 10.0.0.1
for i in 1 2 3; do ip -n $S addr add 10.64.0.$i/32 dev lo; done
ip netns exec $S python3 server.py & SP=$!
sed "s/TMO/6/" table.nft > t.nft
cat >> t.nft <<'EOT'
add set ip svcnat kpaff { type ipv4_addr ; flags dynamic,timeout ; timeout 6s ; }
add chain ip svcnat service-kpaff
add rule ip svcnat service-kpaff update @kpaff { ip saddr } meta l4proto tcp dnat to 10.64.0.1:8080
add element ip svcnat service-ips { 10.96.0.4 . tcp . 80 : goto service-kpaff }
EOT
ip netns exec $S nft -f t.nft; sleep 0.3
CL="ip netns exec $C python3 client.py"
for k in 1 2 3 4; do $CL 10.96.0.2 1 10.0.0.2 >/dev/null; $CL 10.96.0.4 1 10.0.0.2 > /dev/null; ip netns exec $S nft list ruleset | grep -E 'expires' ; sleep 2.5; done
