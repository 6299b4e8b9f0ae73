//go:build linux

package integration

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/svcnat/svcnat/integration/netlab"
)

// traceOut is what svcnat trace --json says, as far as these tests read it.
type traceOut struct {
	Paths []struct {
		Probability float64 `json:"probability"`
		Condition   string  `json:"condition"`
		Verdict     string  `json:"verdict"`
		Destination string  `json:"destination"`
		NotEval     []string
	} `json:"paths"`
}

// prediction is a trace reduced to what a connection can observe: the
// verdicts of the unconditional paths and the endpoint addresses DNAT
// sends them to.
type prediction struct {
	verdicts  []string
	endpoints []string
}

func (p prediction) String() string {
	return fmt.Sprintf("verdicts %v, endpoints %v", p.verdicts, p.endpoints)
}

func predict(t *testing.T, sv *Svcnat, args ...string) prediction {
	t.Helper()
	r := sv.MustRun(t, 0, append([]string{"trace", "--json"}, args...)...)
	var out traceOut
	if err := json.Unmarshal([]byte(r.Stdout), &out); err != nil {
		t.Fatalf("trace --json: %v\n%s", err, r)
	}
	verdicts, eps := map[string]bool{}, map[string]bool{}
	for _, p := range out.Paths {
		if p.Condition != "" {
			continue
		}
		verdicts[p.Verdict] = true
		if p.Verdict == "DNAT" {
			host := p.Destination[:strings.LastIndex(p.Destination, ":")]
			eps[host] = true
		}
	}
	return prediction{keys(verdicts), keys(eps)}
}

func keys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// TestTraceAgreesWithTheKernel: for each traffic case, what svcnat trace
// predicts from the planned rules — the endpoints reached, or a drop or a
// refusal — is what real connections in the lab meet, and trace --live on
// the applied rules predicts the same, on both backends.
func TestTraceAgreesWithTheKernel(t *testing.T) {
	for _, backend := range []string{"nft", "legacy"} {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			traceAgrees(t, backend)
		})
	}
}

func traceAgrees(t *testing.T, backend string) {
	tl := newTrafficLab(t, backend, netlab.Options{Backends: 3, ExtraClients: 1, HTTPPorts: []int{80}, UDPPorts: []int{53}})
	tl.Node.AddAddr(t, "lo", "192.0.2.100/32")
	tl.Node.AddAddr(t, "lo", "192.0.2.50/32")
	all := trEndpoints("node1", trBackendIP4(0), trBackendIP4(1), trBackendIP4(2))
	web := trWeb("default/web", "10.32.0.61", all...)
	web.Type, web.Ports[0].NodePort = "NodePort", 30080
	local := trWeb("default/local", "10.32.0.62", trEndpoint{trBackendIP4(0), "node1"}, trEndpoint{trBackendIP4(1), "node2"})
	local.Type, local.ETP, local.Ports[0].NodePort = "NodePort", "Local", 30081
	remote := trWeb("default/remote", "10.32.0.63", trEndpoint{trBackendIP4(2), "node2"})
	remote.Type, remote.ETP, remote.Ports[0].NodePort = "NodePort", "Local", 30082
	empty := trWeb("default/empty", "10.32.0.70")
	lb := trWeb("default/lb", "10.32.0.65", all[:2]...)
	lb.Type, lb.LBIPs, lb.LBRanges, lb.Ports[0].NodePort = "LoadBalancer", []string{"192.0.2.100"}, []string{"192.0.2.2/32"}, 30083
	ext := trWeb("default/ext", "10.32.0.66", all[1:]...)
	ext.ExternalIPs = []string{"192.0.2.50"}
	sticky := trWeb("default/sticky", "10.32.0.67", all...)
	sticky.Affinity = "ClientIP"
	dns := trService{Name: "kube-system/dns", ClusterIPs: []string{"10.32.0.10"},
		Ports: []trPort{{Name: "dns", Protocol: "UDP", Port: 53}}, Endpoints: all[:2]}
	tl.apply(t, nil, web, local, remote, empty, lb, ext, sticky, dns)

	node := tl.Client.NodeIP4.String()
	client, client2 := tl.Client, tl.Clients[1]
	backend0 := tl.Backends[0]
	for _, c := range []struct {
		name     string
		from     netlab.NS
		src      string
		origin   string
		proto    string
		dst      string
		port     int
		affinity bool
	}{
		{name: "ClusterIPFromClient", from: client.NS, src: client.IP4.String(), dst: "10.32.0.61", port: 80},
		{name: "ClusterIPFromNode", from: tl.Node, src: tl.Uplink.NodeIP4.String(), origin: "local", dst: "10.32.0.61", port: 80},
		{name: "ClusterIPHairpin", from: backend0.NS, src: backend0.IP4.String(), dst: "10.32.0.61", port: 80},
		{name: "NodePortCluster", from: client.NS, src: client.IP4.String(), dst: node, port: 30080},
		{name: "NodePortLocalWithLocalEndpoint", from: client.NS, src: client.IP4.String(), dst: node, port: 30081},
		{name: "NodePortLocalWithoutLocalEndpoint", from: client.NS, src: client.IP4.String(), dst: node, port: 30082},
		{name: "NoEndpoints", from: client.NS, src: client.IP4.String(), dst: "10.32.0.70", port: 80},
		{name: "LoadBalancerAllowed", from: client.NS, src: client.IP4.String(), dst: "192.0.2.100", port: 80},
		{name: "LoadBalancerDenied", from: client2.NS, src: client2.IP4.String(), dst: "192.0.2.100", port: 80},
		{name: "ExternalIP", from: client.NS, src: client.IP4.String(), dst: "192.0.2.50", port: 80},
		{name: "UDP", from: client.NS, src: client.IP4.String(), proto: "udp", dst: "10.32.0.10", port: 53},
		{name: "Affinity", from: client.NS, src: client.IP4.String(), dst: "10.32.0.67", port: 80, affinity: true},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.origin == "" {
				c.origin = "external"
			}
			if c.proto == "" {
				c.proto = "tcp"
			}
			args := []string{"--src", c.src, "--dst", c.dst, "--proto", c.proto, "--dport", fmt.Sprint(c.port), "--origin", c.origin}
			planned := predict(t, tl.SV, args...)
			if live := predict(t, tl.SV, append(args, "--live")...); live.String() != planned.String() {
				t.Fatalf("trace --live says %s, trace of the plan %s", live, planned)
			}
			addr := trHostPort(c.dst, c.port)
			what := fmt.Sprintf("%s (trace predicts %s)", c.name, planned)
			switch {
			case len(planned.verdicts) == 1 && planned.verdicts[0] == "DROP":
				trExpectDropped(t, c.from, addr, what)
			case len(planned.verdicts) == 1 && planned.verdicts[0] == "REJECT":
				trExpectRefused(t, c.from, addr, what)
			case len(planned.verdicts) == 1 && planned.verdicts[0] == "DNAT":
				reached := map[string]bool{}
				// 40 tries reach every one of three endpoints but once
				// in millions of runs.
				for range 40 {
					var r trReply
					if c.proto == "udp" {
						r = trUDP(t, c.from, addr, what)
					} else {
						r = trGet(t, c.from, trURL(c.dst, c.port), what)
					}
					i := trBackendIndex(r.Name)
					if i < 0 {
						t.Fatalf("%s: answered by %q", what, r.Name)
					}
					reached[trBackendIP4(i)] = true
				}
				got := keys(reached)
				if c.affinity {
					// One client sticks to the first endpoint it met,
					// one of those predicted.
					if len(got) != 1 || !strings.Contains(strings.Join(planned.endpoints, " "), got[0]) {
						t.Fatalf("%s: reached %v", what, got)
					}
					return
				}
				if strings.Join(got, " ") != strings.Join(planned.endpoints, " ") {
					t.Fatalf("%s: real connections reached %v", what, got)
				}
			default:
				t.Fatalf("%s: a verdict the test cannot check", what)
			}
		})
	}
}
