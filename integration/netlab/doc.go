// Package netlab builds throw-away network topologies out of Linux network
// namespaces and veth pairs, so integration tests can exercise real kernel
// netfilter (iptables NAT, conntrack) without touching the host's own
// network namespace.
//
// A [Lab] is a "node" namespace (where the code under test installs rules)
// routed to one or more client namespaces, N backend namespaces and an
// uplink namespace that silently swallows everything the node sends to its
// default route. Backends run HTTP and UDP servers that answer with their
// name and the client address they saw, so tests can check which backend
// served a request and whether the source address was preserved.
//
// Address plan (IPv6 only when Options.IPv6 is set):
//
//	link            node side                  peer side ("eth0")
//	client          192.0.2.1/24 fd00:2::1/64   192.0.2.2/24 fd00:2::2/64
//	extra client k  192.0.(2+k).1  fd00:(2+k)::1  192.0.(2+k).2 fd00:(2+k)::2
//	backend i       10.64.(i+1).1  fd00:64:(i+1)::1  10.64.(i+1).2 fd00:64:(i+1)::2
//	uplink          198.51.100.1 fd00:ff::1     198.51.100.2 fd00:ff::2
//
// Every peer's default route points at the node; the node's default route
// points at the uplink. Node-side interface names are cli<k>, be<i> and up0.
//
// Everything here is Linux-only and needs root; [New] skips the test
// otherwise.
package netlab
