//go:build linux

package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/svcnat/svcnat/integration/netlab"
)

// Traffic tests: each builds a lab (client, node, routed backends, uplink
// sink), applies a configuration with svcnat into the node namespace and
// checks it with real TCP and UDP connections. They skip when not root.
//
// Address plan (see netlab): the client is 192.0.2.2 behind the node's
// 192.0.2.1; backend i is 10.64.<i+1>.2 behind the node's 10.64.<i+1>.1.
// Cluster IPs are in 10.32.0.0/16. The client is outside cluster_cidrs
// (10.64.0.0/14), so its traffic to a cluster IP is masqueraded: a backend
// sees the node's address on its own link.

// trGateway is the node's address on backend i's link: what a backend sees
// as the source of masqueraded traffic.
func trGateway(i int) string { return fmt.Sprintf("10.64.%d.1", i+1) }

// trBackendIndex is i for "backend-i", -1 otherwise.
func trBackendIndex(name string) int {
	var i int
	if _, err := fmt.Sscanf(name, "backend-%d", &i); err != nil {
		return -1
	}
	return i
}

// trExpectMasqueraded fails unless the backend that answered saw the node's
// address on its own link as the source.
func trExpectMasqueraded(t testing.TB, r trReply, what string) {
	t.Helper()
	i := trBackendIndex(r.Name)
	if i < 0 {
		t.Fatalf("%s: answered by %q, not a backend", what, r.Name)
	}
	trExpectSource(t, r, what, trGateway(i), "the source is outside cluster_cidrs, so it must be masqueraded to the node's address")
}

// TestTrafficCore runs the core cases on every backend: ClusterIP from an
// external client and from the node itself, NodePort with external policy
// Cluster, a service without endpoints (REJECT), and UDP.
func TestTrafficCore(t *testing.T) {
	for _, backend := range []string{"nft", "legacy", "nftables"} {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			tl := newTrafficLab(t, backend, netlab.Options{Backends: 3, HTTPPorts: []int{80}, UDPPorts: []int{5353}})
			web := trWeb("default/web", "10.32.0.61", trEndpoints("node1", trBackendIP4(0), trBackendIP4(1), trBackendIP4(2))...)
			web.Type = "NodePort"
			web.ETP = "Cluster"
			web.Ports[0].NodePort = 30080
			empty := trWeb("default/empty", "10.32.0.70")
			dns := trService{
				Name:       "kube-system/dns",
				ClusterIPs: []string{"10.32.0.10"},
				Ports:      []trPort{{Name: "dns", Protocol: "UDP", Port: 53, Target: 5353}},
				Endpoints:  trEndpoints("node1", trBackendIP4(0), trBackendIP4(1)),
			}
			tl.apply(t, nil, web, empty, dns)
			all := []string{"backend-0", "backend-1", "backend-2"}

			t.Run("ClusterIPFromClient", func(t *testing.T) {
				what := "default/web cluster IP 10.32.0.61:80 (SVCNAT-SERVICES -> SVC -> SEP DNAT, MARK-MASQ)"
				for range 5 {
					r := trGet(t, tl.Client.NS, trURL("10.32.0.61", 80), what)
					trExpectFrom(t, r, what, all...)
					trExpectMasqueraded(t, r, what)
				}
			})
			t.Run("ClusterIPFromNode", func(t *testing.T) {
				what := "default/web cluster IP 10.32.0.61:80 from the node (nat OUTPUT -> SVCNAT-SERVICES)"
				for range 5 {
					r := trGet(t, tl.Node, trURL("10.32.0.61", 80), what)
					trExpectFrom(t, r, what, all...)
					// The node sends from its own address on the backend's link.
					trExpectSource(t, r, what, trGateway(trBackendIndex(r.Name)), "the node's own address on that link")
				}
			})
			t.Run("NodePortCluster", func(t *testing.T) {
				what := "default/web node port 192.0.2.1:30080 (SVCNAT-NODEPORTS -> EXT -> SVC, policy Cluster)"
				seen := map[string]int{}
				for range 9 {
					r := trGet(t, tl.Client.NS, trURL("192.0.2.1", 30080), what)
					trExpectFrom(t, r, what, all...)
					trExpectMasqueraded(t, r, what)
					seen[r.Name]++
				}
				t.Logf("node port answers: %s", trFmtCounts(seen))
			})
			t.Run("NoEndpointsRejected", func(t *testing.T) {
				trExpectRefused(t, tl.Client.NS, trHostPort("10.32.0.70", 80),
					"default/empty has no endpoints: filter SVCNAT-SERVICES REJECT")
				trExpectRefused(t, tl.Node, trHostPort("10.32.0.70", 80),
					"default/empty has no endpoints: filter OUTPUT -> SVCNAT-SERVICES REJECT")
			})
			t.Run("UDP", func(t *testing.T) {
				what := "kube-system/dns cluster IP udp 10.32.0.10:53 -> target port 5353"
				for range 4 {
					r := trUDP(t, tl.Client.NS, trHostPort("10.32.0.10", 53), what)
					trExpectFrom(t, r, what, "backend-0", "backend-1")
					trExpectMasqueraded(t, r, what)
				}
			})
		})
	}
}

// TestTrafficClusterIP covers the cluster IP in depth (nft): hairpin from a
// backend to its own service, the spread over three endpoints, ClientIP
// affinity, and the conntrack entry of the DNAT.
func TestTrafficClusterIP(t *testing.T) {
	t.Parallel()
	tl := newTrafficLab(t, "nft", netlab.Options{Backends: 3, HTTPPorts: []int{80}, UDPPorts: []int{}})
	three := trEndpoints("node1", trBackendIP4(0), trBackendIP4(1), trBackendIP4(2))
	web := trWeb("default/web", "10.32.0.61", three...)
	self := trWeb("default/self", "10.32.0.62", trEndpoints("node1", trBackendIP4(0))...)
	sticky := trWeb("default/sticky", "10.32.0.63", three...)
	sticky.Affinity = "ClientIP"
	tl.apply(t, nil, web, self, sticky)
	all := []string{"backend-0", "backend-1", "backend-2"}

	t.Run("Hairpin", func(t *testing.T) {
		// The only endpoint calls its own service: DNAT back to itself,
		// masqueraded (SEP's "-s <endpoint> -j MARK-MASQ") so that the
		// reply returns through the node and is un-NATed.
		what := "default/self 10.32.0.62:80 from its own endpoint backend-0 (hairpin: SEP -s 10.64.1.2 -> MARK-MASQ)"
		r := trGet(t, tl.Backends[0].NS, trURL("10.32.0.62", 80), what)
		trExpectFrom(t, r, what, "backend-0")
		trExpectSource(t, r, what, trGateway(0), "hairpin traffic must be masqueraded")

		// Through a three-endpoint service: any answer, masqueraded only
		// when it lands on the caller itself.
		what = "default/web 10.32.0.61:80 from endpoint backend-1 (hairpin or pod-to-pod)"
		for range 10 {
			r := trGet(t, tl.Backends[1].NS, trURL("10.32.0.61", 80), what)
			trExpectFrom(t, r, what, all...)
			if r.Name == "backend-1" {
				trExpectSource(t, r, what, trGateway(1), "hairpin traffic must be masqueraded")
			} else {
				trExpectSource(t, r, what, trBackendIP4(1), "traffic from inside cluster_cidrs keeps its source")
			}
		}
	})

	t.Run("Spread", func(t *testing.T) {
		what := "default/web 10.32.0.61:80 (statistic --probability 0.333/0.5 over three SEPs)"
		var replies []trReply
		for range 60 {
			replies = append(replies, trGet(t, tl.Client.NS, trURL("10.32.0.61", 80), what))
		}
		c := trCount(replies)
		t.Logf("60 requests: %s", trFmtCounts(c))
		for _, n := range all {
			// Binomial(60, 1/3): fewer than 5 has a probability of ~1e-5.
			if c[n] < 5 {
				t.Fatalf("%s: %s answered %d of 60 requests, want at least 5 (%s)", trPacket(tl.Client.NS, "tcp", "10.32.0.61:80", what), n, c[n], trFmtCounts(c))
			}
		}
		if len(c) != 3 {
			t.Fatalf("%s: unexpected answers %s", what, trFmtCounts(c))
		}
	})

	t.Run("ClientIPAffinity", func(t *testing.T) {
		what := "default/sticky 10.32.0.63:80 (ClientIP affinity: -m recent --rcheck / --set)"
		var replies []trReply
		for range 20 {
			replies = append(replies, trGet(t, tl.Client.NS, trURL("10.32.0.63", 80), what))
		}
		if c := trCount(replies); len(c) != 1 {
			t.Fatalf("%s: 20 requests from one client landed on %s, want one endpoint", trPacket(tl.Client.NS, "tcp", "10.32.0.63:80", what), trFmtCounts(c))
		}
		trExpectFrom(t, replies[0], what, all...)
	})

	t.Run("ConntrackDNAT", func(t *testing.T) {
		what := "default/web 10.32.0.61:80"
		r := trGet(t, tl.Client.NS, trURL("10.32.0.61", 80), what)
		out := tl.Node.Run(t, "conntrack", "-L", "-p", "tcp", "--orig-dst", "10.32.0.61")
		// The backend saw the masqueraded source ip:port: that is the
		// reply direction's destination of exactly this connection.
		i := trBackendIndex(r.Name)
		src, sport, _ := strings.Cut(r.Remote, ":")
		var found string
		for _, line := range strings.Split(out, "\n") {
			tu := trConntrackTuples(line)
			if tu == nil || tu.replyDst != src || tu.replyDport != sport {
				continue
			}
			found = line
			if tu.origSrc != "192.0.2.2" || tu.origDst != "10.32.0.61" || tu.origDport != "80" {
				t.Fatalf("netns %s: conntrack entry %q: want original src=192.0.2.2 dst=10.32.0.61 dport=80", tl.Node.Name, line)
			}
			if tu.replySrc != trBackendIP4(i) || tu.replySport != "80" {
				t.Fatalf("netns %s: conntrack entry %q: want the DNAT to the endpoint that answered (%s = %s:80) as reply src", tl.Node.Name, line, r.Name, trBackendIP4(i))
			}
		}
		if found == "" {
			t.Fatalf("netns %s: `conntrack -L -p tcp --orig-dst 10.32.0.61` has no entry whose reply goes to %s (what %s saw); got:\n%s", tl.Node.Name, r.Remote, r.Name, out)
		}
		t.Logf("conntrack: %s", found)
	})
}

// trTuples are the two directions of a conntrack -L line.
type trTuples struct {
	origSrc, origDst, origSport, origDport     string
	replySrc, replyDst, replySport, replyDport string
}

// trConntrackTuples parses "tcp 6 119 TIME_WAIT src=A dst=B sport=P
// dport=Q src=C dst=D sport=R dport=S [ASSURED] ..."; nil when the line has
// no two tuples.
func trConntrackTuples(line string) *trTuples {
	var vals = map[string][]string{}
	for _, f := range strings.Fields(line) {
		k, v, ok := strings.Cut(f, "=")
		if ok {
			vals[k] = append(vals[k], v)
		}
	}
	for _, k := range []string{"src", "dst", "sport", "dport"} {
		if len(vals[k]) < 2 {
			return nil
		}
	}
	return &trTuples{
		vals["src"][0], vals["dst"][0], vals["sport"][0], vals["dport"][0],
		vals["src"][1], vals["dst"][1], vals["sport"][1], vals["dport"][1],
	}
}

// TestTrafficNodePortLocal checks external_traffic_policy Local (nft and
// nftables): on a node with a local endpoint only that endpoint answers
// and it sees the client's own address; on a node without one the node
// port drops while the cluster IP still works.
func TestTrafficNodePortLocal(t *testing.T) {
	t.Parallel()
	for _, backend := range []string{"nft", "nftables"} {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			trafficNodePortLocal(t, backend)
		})
	}
}

func trafficNodePortLocal(t *testing.T, backend string) {
	tl := newTrafficLab(t, backend, netlab.Options{Backends: 2, HTTPPorts: []int{80}, UDPPorts: []int{}})
	svc := trWeb("default/local", "10.32.0.64",
		trEndpoint{Addr: trBackendIP4(0), Node: "node1"},
		trEndpoint{Addr: trBackendIP4(1), Node: "node2"})
	svc.Type = "NodePort"
	svc.ETP = "Local"
	svc.Ports[0].NodePort = 30081
	nodePort := trURL("192.0.2.1", 30081)

	t.Run("LocalEndpoint", func(t *testing.T) {
		tl.apply(t, nil, svc)
		what := "default/local node port 192.0.2.1:30081 on node1 (policy Local: EXT -> SVL, local endpoint backend-0 only, no masquerade)"
		for range 8 {
			r := trGet(t, tl.Client.NS, nodePort, what)
			trExpectFrom(t, r, what, "backend-0")
			trExpectSource(t, r, what, "192.0.2.2", "policy Local preserves the client's address")
		}
		what = "default/local cluster IP 10.32.0.64:80 (internal policy Cluster: both endpoints)"
		for range 4 {
			r := trGet(t, tl.Client.NS, trURL("10.32.0.64", 80), what)
			trExpectFrom(t, r, what, "backend-0", "backend-1")
			trExpectMasqueraded(t, r, what)
		}
	})

	t.Run("NoLocalEndpoint", func(t *testing.T) {
		// The same configuration on a node that hosts neither endpoint.
		tl.apply(t, []string{"--node", "node3"}, svc)
		trExpectDropped(t, tl.Client.NS, trHostPort("192.0.2.1", 30081),
			"default/local node port 192.0.2.1:30081 on node3 (policy Local, no local endpoints: DROP)")
		what := "default/local cluster IP 10.32.0.64:80 on node3 (internal policy Cluster still reaches both)"
		for range 4 {
			r := trGet(t, tl.Client.NS, trURL("10.32.0.64", 80), what)
			trExpectFrom(t, r, what, "backend-0", "backend-1")
			trExpectMasqueraded(t, r, what)
		}
	})
}

// TestTrafficExternal covers the addresses outside the cluster IP range
// (nft): a load balancer IP with source ranges and an external IP, both
// held by the node.
func TestTrafficExternal(t *testing.T) {
	t.Parallel()
	tl := newTrafficLab(t, "nft", netlab.Options{Backends: 2, ExtraClients: 1, HTTPPorts: []int{80}, UDPPorts: []int{}})
	tl.Node.AddAddr(t, "lo", "192.0.2.100/32")
	tl.Node.AddAddr(t, "lo", "192.0.2.50/32")
	eps := trEndpoints("node1", trBackendIP4(0), trBackendIP4(1))
	lb := trWeb("default/lb", "10.32.0.65", eps...)
	lb.Type = "LoadBalancer"
	lb.LBIPs = []string{"192.0.2.100"}
	lb.LBRanges = []string{"192.0.2.2/32"}
	lb.Ports[0].NodePort = 30082
	ext := trWeb("default/ext", "10.32.0.66", eps...)
	ext.ExternalIPs = []string{"192.0.2.50"}
	tl.apply(t, nil, lb, ext)
	both := []string{"backend-0", "backend-1"}

	t.Run("LoadBalancerSourceRanges", func(t *testing.T) {
		what := "default/lb load balancer IP 192.0.2.100:80 from 192.0.2.2 (in load_balancer_source_ranges: FW -> EXT)"
		for range 4 {
			r := trGet(t, tl.Client.NS, trURL("192.0.2.100", 80), what)
			trExpectFrom(t, r, what, both...)
		}
		trExpectDropped(t, tl.Clients[1].NS, trHostPort("192.0.2.100", 80),
			"default/lb load balancer IP 192.0.2.100:80 from 192.0.3.2 (not in load_balancer_source_ranges: FW drop)")
	})

	t.Run("ExternalIP", func(t *testing.T) {
		what := "default/ext external IP 192.0.2.50:80 (SVCNAT-SERVICES -d 192.0.2.50 -> EXT, masqueraded)"
		for _, c := range tl.Clients {
			for range 3 {
				r := trGet(t, c.NS, trURL("192.0.2.50", 80), what)
				trExpectFrom(t, r, what, both...)
				trExpectMasqueraded(t, r, what)
			}
		}
	})
}

// TestTrafficIPv6 checks a dual-stack service (nft): the IPv6 cluster IP
// through ip6tables and the IPv4 one through iptables.
func TestTrafficIPv6(t *testing.T) {
	t.Parallel()
	tl := newTrafficLab(t, "nft", netlab.Options{Backends: 2, IPv6: true, HTTPPorts: []int{80}, UDPPorts: []int{}})
	svc := trService{
		Name:       "default/dual",
		ClusterIPs: []string{"10.32.0.20", "fd00:32::20"},
		Ports:      []trPort{{Name: "http", Port: 80}},
		Endpoints: trEndpoints("node1", trBackendIP4(0), trBackendIP4(1),
			tl.Backends[0].IP6.String(), tl.Backends[1].IP6.String()),
	}
	empty := trService{
		Name:       "default/dual-empty",
		ClusterIPs: []string{"10.32.0.21", "fd00:32::21"},
		Ports:      []trPort{{Name: "http", Port: 80}},
	}
	tl.apply(t, nil, svc, empty)
	both := []string{"backend-0", "backend-1"}

	// The kernel (6.18 here) loses the ICMPv6 error to a forwarded
	// connection's first SYN even for a plain `ip6tables -A FORWARD -j
	// REJECT` without svcnat; the retransmitted SYN is refused after 1 s.
	// IPv4 and tcp-reset are refused at once. So: refused, not timed out.
	trExpectRefusedWithin(t, tl.Client.NS, trHostPort("fd00:32::21", 80),
		"default/dual-empty has no endpoints: ip6tables filter SVCNAT-SERVICES REJECT", 1500*time.Millisecond)

	what := "default/dual IPv6 cluster IP [fd00:32::20]:80 (ip6tables SVCNAT-SERVICES -> SVC -> SEP DNAT)"
	for range 4 {
		r := trGet(t, tl.Client.NS, trURL("fd00:32::20", 80), what)
		trExpectFrom(t, r, what, both...)
		i := trBackendIndex(r.Name)
		trExpectSource(t, r, what, tl.Backends[i].NodeIP6.String(), "the client is outside fd00:64::/32, so it is masqueraded")
	}
	what = "default/dual IPv4 cluster IP 10.32.0.20:80"
	for range 2 {
		r := trGet(t, tl.Client.NS, trURL("10.32.0.20", 80), what)
		trExpectFrom(t, r, what, both...)
		trExpectMasqueraded(t, r, what)
	}
}

// TestTrafficUDPEndpointRemoved checks SVCNAT.md §4: "UDP: when an endpoint
// leaves a service, its conntrack entries are deleted so clients do not
// keep sending to it", on nft and nftables. A client keeps one UDP socket (one conntrack entry)
// to the cluster IP while the service's only endpoint is replaced.
func TestTrafficUDPEndpointRemoved(t *testing.T) {
	t.Parallel()
	for _, backend := range []string{"nft", "nftables"} {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			trafficUDPEndpointRemoved(t, backend)
		})
	}
}

func trafficUDPEndpointRemoved(t *testing.T, backend string) {
	tl := newTrafficLab(t, backend, netlab.Options{Backends: 2, HTTPPorts: []int{}, UDPPorts: []int{53}})
	dns := func(ep int) trService {
		return trService{
			Name:       "kube-system/dns",
			ClusterIPs: []string{"10.32.0.10"},
			Ports:      []trPort{{Name: "dns", Protocol: "UDP", Port: 53}},
			Endpoints:  trEndpoints("node1", trBackendIP4(ep)),
		}
	}
	tl.apply(t, nil, dns(0))
	c, err := tl.Client.Dial("udp", "10.32.0.10:53")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	roundTrip := func(what string) trReply {
		t.Helper()
		buf := make([]byte, 512)
		c.SetDeadline(time.Now().Add(2 * time.Second))
		_, err := c.Write([]byte("ping"))
		if err == nil {
			var n int
			n, err = c.Read(buf)
			buf = buf[:n]
		}
		if err != nil {
			t.Fatalf("%s: no answer: %v", trPacket(tl.Client.NS, "udp", "10.32.0.10:53 (one socket, "+c.LocalAddr().String()+")", what), err)
		}
		name, remote := netlab.ParseReply(string(buf))
		return trReply{name, remote}
	}
	what := "kube-system/dns udp 10.32.0.10:53 -> only endpoint backend-0"
	trExpectFrom(t, roundTrip(what), what, "backend-0")

	// svcnat deletes the entry over netlink: a conntrack binary first on
	// its PATH would fail the cleanup if svcnat ran it.
	noTool := t.TempDir()
	if err := os.WriteFile(filepath.Join(noTool, "conntrack"), []byte("#!/bin/sh\necho svcnat must not run conntrack >&2\nexit 99\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	tl.SV.Env = append(tl.SV.Env, "PATH="+noTool+":"+os.Getenv("PATH"))
	tl.configure(t, dns(1))
	out := tl.SV.MustRun(t, 0, "apply", "-auto-approve")
	if !strings.Contains(out.Stdout, "Deleted the UDP conntrack entries of 1 flow to removed endpoints.") || out.Stderr != "" {
		t.Fatalf("apply that removes a UDP endpoint:\n%s", out)
	}
	what = "kube-system/dns udp 10.32.0.10:53 after backend-0 left and backend-1 joined (the stale conntrack entry must be gone)"
	r := roundTrip(what)
	if r.Name == "backend-0" {
		entries, _ := tl.Node.Exec("conntrack", "-L", "-p", "udp", "--orig-dst", "10.32.0.10")
		t.Fatalf("%s: still answered by removed endpoint %s; netns %s conntrack:\n%s",
			trPacket(tl.Client.NS, "udp", "10.32.0.10:53", what), r.Name, tl.Node.Name, entries)
	}
	trExpectFrom(t, r, what, "backend-1")
}
