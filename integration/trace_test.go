//go:build linux

package integration

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/svcnat/svcnat/integration/netlab"
)

// traceOut is what svcnat trace --json says, as far as these tests read it.
type traceOut struct {
	Paths []struct {
		Probability float64  `json:"probability"`
		Condition   string   `json:"condition"`
		Verdict     string   `json:"verdict"`
		Destination string   `json:"destination"`
		DecidedBy   string   `json:"decided_by"`
		NotEval     []string `json:"not_evaluated"`
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
// the applied rules predicts the same, on every backend.
func TestTraceAgreesWithTheKernel(t *testing.T) {
	for _, backend := range []string{"nft", "legacy", "nftables"} {
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

// TestTraceAgreesWithTheKernelOnAFirewalledHost: on a node whose own
// firewall sits beside svcnat's rules — a DROP in raw (as Docker 28 and
// Calico put there), a fail2ban-like filter INPUT (-m state, multiport, a
// ban chain, loopback accepted, everything else dropped), a mark set in
// mangle and rejected in filter — trace --live names the verdict real
// connections meet, with every rule on the way evaluated; and a packet
// the node sends to its own node port or 127.0.0.1 of a service without
// endpoints is rejected in filter INPUT, as trace says.
func TestTraceAgreesWithTheKernelOnAFirewalledHost(t *testing.T) {
	for _, backend := range []string{"nft", "legacy"} {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			traceAgreesFirewalled(t, backend)
		})
	}
}

// TestTraceOnNFTablesNamesTheFirewallItDoesNotEvaluate: on nftables,
// trace evaluates svcnat's table only. On a node whose own firewall is a
// table of its own (inet, a drop in raw prerouting, an input chain that
// drops what it does not accept), trace --live names that table's base
// chains on every path that crosses them, never silently: where the
// firewall lets the packet through, the verdict trace gives is the one
// real connections meet; where it drops it, the path still names the
// chain that did.
func TestTraceOnNFTablesNamesTheFirewallItDoesNotEvaluate(t *testing.T) {
	t.Parallel()
	tl := newTrafficLab(t, "nftables", netlab.Options{Backends: 2, HTTPPorts: []int{80}, UDPPorts: []int{}})
	all := trEndpoints("node1", trBackendIP4(0), trBackendIP4(1))
	web := trWeb("default/web", "10.32.0.61", all...)
	web.Type, web.Ports[0].NodePort = "NodePort", 30080
	raw := trWeb("default/raw", "10.32.0.68", all...)
	tl.apply(t, nil, web, raw)

	fw := filepath.Join(t.TempDir(), "fw.nft")
	if err := os.WriteFile(fw, []byte(`table inet fw {
	chain raw {
		type filter hook prerouting priority -300; policy accept;
		ip daddr 10.32.0.68 tcp dport 80 drop
	}
	chain input {
		type filter hook input priority 0; policy drop;
		ct state established,related accept
		iif "lo" accept
		tcp dport 22 accept
	}
}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	tl.Node.Run(t, "nft", "-f", fw)
	for _, port := range []int{22, 9000} {
		tl.Node.Listen(t, "tcp", fmt.Sprintf("0.0.0.0:%d", port))
	}
	const (
		rawChain   = "inet fw raw: base chain of another table"
		inputChain = "inet fw input: base chain of another table"
	)
	client, node := tl.Client, tl.Client.NodeIP4.String()
	for _, c := range []struct {
		name    string
		dst     string
		port    int
		verdict string   // svcnat's table's, which trace evaluates
		named   []string // the firewall's chains on the path
		kernel  string   // what a real connection meets
	}{
		{name: "ClusterIP", dst: "10.32.0.61", port: 80, verdict: "DNAT", named: []string{rawChain}, kernel: "DNAT"},
		{name: "NodePort", dst: node, port: 30080, verdict: "DNAT", named: []string{rawChain}, kernel: "DNAT"},
		{name: "DroppedInRaw", dst: "10.32.0.68", port: 80, verdict: "DNAT", named: []string{rawChain}, kernel: "DROP"},
		{name: "SSHAccepted", dst: node, port: 22, verdict: "ACCEPT", named: []string{rawChain, inputChain}, kernel: "ACCEPT"},
		{name: "OtherPortDropped", dst: node, port: 9000, verdict: "ACCEPT", named: []string{rawChain, inputChain}, kernel: "DROP"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := tl.SV.MustRun(t, 0, "trace", "--json", "--live", "--src", client.IP4.String(), "--dst", c.dst, "--dport", fmt.Sprint(c.port), "--origin", "external")
			var out traceOut
			if err := json.Unmarshal([]byte(r.Stdout), &out); err != nil || len(out.Paths) == 0 {
				t.Fatalf("trace --json: %v\n%s", err, r)
			}
			for _, p := range out.Paths {
				notEval := strings.Join(p.NotEval, "\n")
				for _, n := range c.named {
					if !strings.Contains(notEval, n) {
						t.Fatalf("trace --live: a path does not name %q as not evaluated (it names %q)\n%s", n, p.NotEval, r.Stdout)
					}
				}
				if p.Verdict != c.verdict || len(p.NotEval) != len(c.named) {
					t.Fatalf("trace --live: verdict %s, not evaluated %q; want %s and only %q\n%s", p.Verdict, p.NotEval, c.verdict, c.named, r.Stdout)
				}
			}
			addr := trHostPort(c.dst, c.port)
			what := fmt.Sprintf("%s (the kernel's verdict: %s)", c.name, c.kernel)
			switch c.kernel {
			case "DROP":
				trExpectDropped(t, client.NS, addr, what)
			case "ACCEPT":
				conn, err := client.NS.WithTimeout(5 * time.Second).DialTCP(addr)
				if err != nil {
					t.Fatalf("%s: %v, want connected", trPacket(client.NS, "tcp", addr, what), err)
				}
				conn.Close()
			case "DNAT":
				if r := trGet(t, client.NS, trURL(c.dst, c.port), what); trBackendIndex(r.Name) < 0 {
					t.Fatalf("%s: answered by %q", what, r.Name)
				}
			}
		})
	}
}

func traceAgreesFirewalled(t *testing.T, backend string) {
	tl := newTrafficLab(t, backend, netlab.Options{Backends: 2, ExtraClients: 1, HTTPPorts: []int{80}, UDPPorts: []int{}})
	all := trEndpoints("node1", trBackendIP4(0), trBackendIP4(1))
	web := trWeb("default/web", "10.32.0.61", all...)
	web.Type, web.Ports[0].NodePort = "NodePort", 30080
	raw := trWeb("default/raw", "10.32.0.68", all...)
	untracked := trWeb("default/untracked", "10.32.0.71", all...)
	empty := trWeb("default/empty", "10.32.0.70")
	empty.Type, empty.Ports[0].NodePort = "NodePort", 30090
	tl.apply(t, nil, web, raw, untracked, empty)

	client, banned := tl.Client, tl.Clients[1]
	ipt := "iptables-nft"
	if backend == "legacy" {
		ipt = "iptables-legacy"
	}
	for _, r := range [][]string{
		{"-t", "raw", "-A", "PREROUTING", "-d", "10.32.0.68", "-p", "tcp", "--dport", "80", "-j", "DROP"},
		{"-t", "raw", "-A", "PREROUTING", "-d", "10.32.0.71", "-p", "tcp", "--dport", "80", "-j", "CT", "--notrack"},
		{"-t", "mangle", "-A", "PREROUTING", "-p", "tcp", "--dport", "9443", "-j", "MARK", "--set-xmark", "0x100/0x100"},
		{"-N", "f2b-sshd"},
		{"-A", "f2b-sshd", "-s", banned.IP4.String(), "-j", "REJECT"},
		{"-A", "f2b-sshd", "-j", "RETURN"},
		{"-A", "INPUT", "-p", "tcp", "-m", "multiport", "--dports", "22", "-j", "f2b-sshd"},
		{"-A", "INPUT", "-m", "state", "--state", "RELATED,ESTABLISHED", "-j", "ACCEPT"},
		{"-A", "INPUT", "-i", "lo", "-j", "ACCEPT"},
		{"-A", "INPUT", "-m", "mark", "--mark", "0x100/0x100", "-j", "REJECT"},
		{"-A", "INPUT", "-p", "tcp", "-m", "state", "--state", "NEW", "-m", "tcp", "--dport", "22", "-j", "ACCEPT"},
		{"-A", "INPUT", "-p", "tcp", "-m", "multiport", "--dports", "8000,8080:8090", "-m", "conntrack", "--ctstate", "NEW", "-j", "ACCEPT"},
		{"-A", "INPUT", "-j", "DROP"},
	} {
		tl.Node.Run(t, append([]string{ipt}, r...)...)
	}
	// Something listens on every port tried on the node, so a connection
	// that is not refused or dropped by a rule is accepted.
	for _, port := range []int{22, 8085, 9000, 9443, 30090} {
		tl.Node.Listen(t, "tcp", fmt.Sprintf("0.0.0.0:%d", port))
	}

	node := client.NodeIP4.String()
	for _, c := range []struct {
		name    string
		from    netlab.NS
		src     string
		origin  string
		dst     string
		port    int
		verdict string
	}{
		{name: "SSH", from: client.NS, src: client.IP4.String(), dst: node, port: 22, verdict: "ACCEPT"},
		{name: "SSHBanned", from: banned.NS, src: banned.IP4.String(), dst: node, port: 22, verdict: "REJECT"},
		{name: "MultiportRange", from: client.NS, src: client.IP4.String(), dst: node, port: 8085, verdict: "ACCEPT"},
		{name: "OtherPortDropped", from: client.NS, src: client.IP4.String(), dst: node, port: 9000, verdict: "DROP"},
		{name: "MarkedInMangle", from: client.NS, src: client.IP4.String(), dst: node, port: 9443, verdict: "REJECT"},
		{name: "DropInRaw", from: client.NS, src: client.IP4.String(), dst: "10.32.0.68", port: 80, verdict: "DROP"},
		// Untracked in raw: nat never sees it, so it is forwarded to the
		// cluster IP itself, which nothing answers (the uplink's sink).
		{name: "NotrackInRaw", from: client.NS, src: client.IP4.String(), dst: "10.32.0.71", port: 80, verdict: "ACCEPT"},
		{name: "ClusterIPForwarded", from: client.NS, src: client.IP4.String(), dst: "10.32.0.61", port: 80, verdict: "DNAT"},
		{name: "LoopbackAccepted", from: tl.Node, src: node, origin: "local", dst: node, port: 9000, verdict: "ACCEPT"},
		{name: "LocalNodePortNoEndpoints", from: tl.Node, src: node, origin: "local", dst: node, port: 30090, verdict: "REJECT"},
		{name: "LocalhostNodePortNoEndpoints", from: tl.Node, src: "127.0.0.1", origin: "local", dst: "127.0.0.1", port: 30090, verdict: "REJECT"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.origin == "" {
				c.origin = "external"
			}
			r := tl.SV.MustRun(t, 0, "trace", "--json", "--live", "--src", c.src, "--dst", c.dst, "--dport", fmt.Sprint(c.port), "--origin", c.origin)
			var out traceOut
			if err := json.Unmarshal([]byte(r.Stdout), &out); err != nil {
				t.Fatalf("trace --json: %v\n%s", err, r)
			}
			for _, p := range out.Paths {
				if p.Verdict != c.verdict || len(p.NotEval) > 0 {
					t.Fatalf("trace --live: verdict %s (decided by %q), not evaluated %q; want %s\n%s", p.Verdict, p.DecidedBy, p.NotEval, c.verdict, r.Stdout)
				}
			}
			addr := trHostPort(c.dst, c.port)
			what := fmt.Sprintf("%s (trace predicts %s)", c.name, c.verdict)
			switch {
			case c.verdict == "DROP":
				trExpectDropped(t, c.from, addr, what)
			case c.verdict == "REJECT":
				trExpectRefused(t, c.from, addr, what)
			case c.verdict == "ACCEPT" && strings.HasPrefix(c.dst, "10.32."):
				// Accepted to a cluster IP without DNAT: forwarded as it
				// is, into the uplink's sink, where nothing answers.
				trExpectDropped(t, c.from, addr, what)
			case c.verdict == "ACCEPT":
				conn, err := c.from.WithTimeout(5 * time.Second).DialTCP(addr)
				if err != nil {
					t.Fatalf("%s: %v, want connected", trPacket(c.from, "tcp", addr, what), err)
				}
				conn.Close()
			case c.verdict == "DNAT":
				if r := trGet(t, c.from, trURL(c.dst, c.port), what); trBackendIndex(r.Name) < 0 {
					t.Fatalf("%s: answered by %q", what, r.Name)
				}
			}
		})
	}
}
