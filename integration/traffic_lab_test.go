//go:build linux

package integration

import (
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/svcnat/svcnat/integration/netlab"
	"github.com/svcnat/svcnat/internal/kernel/backend"
	"github.com/svcnat/svcnat/internal/kernel/iptables/rules"
)

// This file holds the helpers of the traffic, load and fault tests
// (traffic_test.go, load_test.go): a netlab topology with svcnat applied in
// its node namespace, a tiny HCL builder, checks that name the namespace,
// the rule and the packet when they fail, and a dump of the node's rules
// and conntrack table on failure.

// trPrefix is the chain prefix the tests' configurations use (the default).
const trPrefix = "SVCNAT"

// trNegative bounds a connection that is expected to be dropped: in a lab a
// healthy path answers in milliseconds, so a second is plenty and keeps the
// negative checks cheap.
const trNegative = time.Second

// trafficLab is a netlab lab whose node namespace svcnat manages.
type trafficLab struct {
	*netlab.Lab
	Backend string // "nft", "legacy" or "nftables"
	SV      *Svcnat
	IPv6    bool
}

// newTrafficLab builds a lab, a svcnat runner for its node namespace with a
// fresh state directory, and registers the failure dump (which runs before
// the lab is torn down).
func newTrafficLab(t *testing.T, backend string, opts netlab.Options) *trafficLab {
	t.Helper()
	lab := netlab.New(t, opts)
	tl := &trafficLab{Lab: lab, Backend: backend, IPv6: opts.IPv6}
	tl.SV = NewSvcnat(t, lab.Node.Name, "", backend)
	t.Cleanup(func() {
		if t.Failed() {
			tl.dump(t)
		}
	})
	return tl
}

// saveTool is the iptables-save binary of the lab's backend for a family.
func (tl *trafficLab) saveTool(f backend.Family) string {
	tool := "iptables"
	if f == backend.IPv6 {
		tool = "ip6tables"
	}
	switch tl.Backend {
	case "legacy":
		return tool + "-legacy-save"
	default:
		return tool + "-nft-save"
	}
}

// dump logs what a failing test needs to tell which rule and packet went
// wrong: the node namespace's iptables-save -c (each family), its conntrack
// table, and its addresses.
func (tl *trafficLab) dump(t testing.TB) {
	ns := tl.Node.Name
	fams := []backend.Family{backend.IPv4}
	if tl.IPv6 {
		fams = append(fams, backend.IPv6)
	}
	if tl.Backend == "nftables" {
		// svcnat's tables and everything beside them; a rule of svcnat's
		// has no counter, so no counters are asked for.
		out, err := tl.Node.Exec("nft", "list", "ruleset")
		if err != nil {
			t.Logf("failure dump: netns %s: nft list ruleset: %v", ns, err)
		}
		t.Logf("failure dump: netns %s: nft list ruleset:\n%s", ns, out)
		fams = nil
	}
	for _, f := range fams {
		tool := tl.saveTool(f)
		// With counters: they show which rule the failed packet hit.
		out, err := tl.Node.Exec(tool, "-c")
		if err != nil {
			t.Logf("failure dump: netns %s: %s: %v", ns, tool, err)
		}
		t.Logf("failure dump: netns %s: %s -c (backend %s):\n%s", ns, tool, tl.Backend, trTrimDump(out))
	}
	out, err := tl.Node.Exec("conntrack", "-L")
	if err != nil {
		t.Logf("failure dump: netns %s: conntrack -L: %v", ns, err)
	}
	t.Logf("failure dump: netns %s: conntrack -L:\n%s", ns, out)
	if tl.IPv6 {
		out, _ := tl.Node.Exec("conntrack", "-L", "-f", "ipv6")
		t.Logf("failure dump: netns %s: conntrack -L -f ipv6:\n%s", ns, out)
	}
	out, _ = tl.Node.Exec("ip", "-br", "addr")
	t.Logf("failure dump: netns %s: ip -br addr:\n%s", ns, out)
}

// trDumpLines bounds a logged dump; bigger ones keep only what a packet hit.
const trDumpLines = 400

// trTrimDump keeps a big iptables-save -c dump readable: the table and
// built-in chain lines and every rule whose counters are not zero, which is
// where the failed packet went.
func trTrimDump(out string) string {
	lines := strings.Split(out, "\n")
	if len(lines) <= trDumpLines {
		return out
	}
	var b strings.Builder
	omitted := 0
	for _, l := range lines {
		keep := strings.HasPrefix(l, "*") || strings.HasPrefix(l, "COMMIT") ||
			(strings.HasPrefix(l, ":") && !strings.HasPrefix(l, ":"+trPrefix)) ||
			(strings.HasPrefix(l, "[") && !strings.HasPrefix(l, "[0:0]"))
		if !keep {
			omitted++
			continue
		}
		b.WriteString(l + "\n")
	}
	fmt.Fprintf(&b, "(%d lines without packets omitted)\n", omitted)
	return b.String()
}

// configure writes a configuration (settings plus services) into a fresh
// directory and points the runner at it.
func (tl *trafficLab) configure(t testing.TB, services ...trService) string {
	t.Helper()
	tl.SV.Config = writeConfig(t, trConfigFiles(tl.IPv6, services...))
	return tl.SV.Config
}

// apply writes the configuration, applies it (extra arguments are appended
// to `apply -auto-approve`), and checks that a plan right after is empty.
func (tl *trafficLab) apply(t testing.TB, extra []string, services ...trService) {
	t.Helper()
	tl.configure(t, services...)
	tl.SV.MustRun(t, 0, append([]string{"apply", "-auto-approve"}, extra...)...)
	tl.SV.MustRun(t, 0, append([]string{"plan", "--detailed-exitcode"}, extra...)...)
}

// owned is the text of the live IPv4 rules svcnat owns in the node
// namespace, in the canonical form (backend.Ruleset.Text): on nftables
// svcnat's ip table but its canary.
func (tl *trafficLab) owned(t testing.TB) string {
	t.Helper()
	return tl.live(t, backend.IPv4).Owned(trPrefix).Text()
}

// foreign is the text of the live IPv4 rules svcnat does not own.
func (tl *trafficLab) foreign(t testing.TB) string {
	t.Helper()
	return tl.live(t, backend.IPv4).Foreign(trPrefix).Text()
}

func (tl *trafficLab) live(t testing.TB, f backend.Family) *backend.Ruleset {
	t.Helper()
	if tl.Backend == "nftables" {
		return nftLive(t, tl.Node.Name, trPrefix, f)
	}
	out := tl.Node.Run(t, tl.saveTool(f))
	rs, err := rules.ParseSave(f, strings.NewReader(out))
	if err != nil {
		t.Fatalf("netns %s: parsing %s: %v", tl.Node.Name, tl.saveTool(f), err)
	}
	return rs
}

// --- traffic checks -------------------------------------------------------

// trReply is one answer of a backend server.
type trReply struct {
	Name   string // "backend-0", ...
	Remote string // the source ip:port the backend saw
}

// SourceIP is the address the backend saw the request come from.
func (r trReply) SourceIP() string {
	ap, err := netip.ParseAddrPort(r.Remote)
	if err != nil {
		return r.Remote
	}
	return ap.Addr().String()
}

// trPacket describes a check for failure messages: which namespace sends
// what to where, and which rule is supposed to handle it.
func trPacket(from netlab.NS, proto, dst, rule string) string {
	return fmt.Sprintf("%s packet from netns %s to %s (rule: %s)", proto, from.Name, dst, rule)
}

// get sends one HTTP request to url from inside from and returns who
// answered; any error fails the test naming namespace, packet and rule.
func trGet(t testing.TB, from netlab.NS, url, rule string) trReply {
	t.Helper()
	body, err := from.HTTPGet(url)
	if err != nil {
		t.Fatalf("%s: no answer: %v", trPacket(from, "tcp", url, rule), err)
	}
	name, remote := netlab.ParseReply(body)
	return trReply{name, remote}
}

// udp is get for a UDP round trip to addr ("ip:port").
func trUDP(t testing.TB, from netlab.NS, addr, rule string) trReply {
	t.Helper()
	body, err := from.UDPRoundTrip(addr, "ping")
	if err != nil {
		t.Fatalf("%s: no answer: %v", trPacket(from, "udp", addr, rule), err)
	}
	name, remote := netlab.ParseReply(body)
	return trReply{name, remote}
}

// expectDropped checks that a TCP connection to addr from inside from times
// out (a DROP, or no rule and the packet lost in the uplink sink).
func trExpectDropped(t testing.TB, from netlab.NS, addr, rule string) {
	t.Helper()
	c, err := from.WithTimeout(trNegative).DialTCP(addr)
	if err == nil {
		c.Close()
		t.Fatalf("%s: connected, want the SYN dropped (timeout)", trPacket(from, "tcp", addr, rule))
	}
	if !netlab.IsTimeout(err) {
		t.Fatalf("%s: got %v, want the SYN dropped (timeout)", trPacket(from, "tcp", addr, rule), err)
	}
}

// trExpectRefused checks that a TCP connection to addr is refused at once
// (REJECT), not after a timeout.
func trExpectRefused(t testing.TB, from netlab.NS, addr, rule string) {
	t.Helper()
	trExpectRefusedWithin(t, from, addr, rule, 500*time.Millisecond)
}

// trExpectRefusedWithin is trExpectRefused with a bound on how long the
// refusal may take.
func trExpectRefusedWithin(t testing.TB, from netlab.NS, addr, rule string, within time.Duration) {
	t.Helper()
	start := time.Now()
	c, err := from.WithTimeout(within + 2*time.Second).DialTCP(addr)
	if err == nil {
		c.Close()
		t.Fatalf("%s: connected, want connection refused", trPacket(from, "tcp", addr, rule))
	}
	if !netlab.IsRefused(err) {
		t.Fatalf("%s: got %v after %v, want connection refused", trPacket(from, "tcp", addr, rule), err, time.Since(start))
	}
	if d := time.Since(start); d > within {
		t.Fatalf("%s: refused only after %v, want within %v", trPacket(from, "tcp", addr, rule), d, within)
	}
}

// expectFrom fails unless the reply came from one of names.
func trExpectFrom(t testing.TB, r trReply, what string, names ...string) {
	t.Helper()
	for _, n := range names {
		if r.Name == n {
			return
		}
	}
	t.Fatalf("%s: answered by %q (saw source %s), want one of %v", what, r.Name, r.Remote, names)
}

// expectSource fails unless the backend saw the request come from ip.
func trExpectSource(t testing.TB, r trReply, what, ip, why string) {
	t.Helper()
	if r.SourceIP() != ip {
		t.Fatalf("%s: %s saw source %s, want %s (%s)", what, r.Name, r.Remote, ip, why)
	}
}

// url is "http://<addr>:<port>/" with IPv6 brackets.
func trURL(addr string, port int) string {
	return "http://" + netlab.HostPort(netip.MustParseAddr(addr), port) + "/"
}

func trHostPort(addr string, port int) string {
	return netlab.HostPort(netip.MustParseAddr(addr), port)
}

// count tallies which backends answered.
func trCount(replies []trReply) map[string]int {
	m := map[string]int{}
	for _, r := range replies {
		m[r.Name]++
	}
	return m
}

func trFmtCounts(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%s=%d ", k, m[k])
	}
	return strings.TrimSpace(b.String())
}

// --- configuration builder ------------------------------------------------

// trService is one service block; zero fields are left out of the HCL.
type trService struct {
	Name        string
	Type        string
	ClusterIPs  []string
	ExternalIPs []string
	LBIPs       []string
	LBRanges    []string
	ETP         string
	HCNodePort  int
	Affinity    string
	Ports       []trPort
	Endpoints   []trEndpoint
	// HealthCheck is the body of a health_check block ("": none).
	HealthCheck string
}

type trPort struct {
	Name     string
	Protocol string
	Port     int
	Target   int
	NodePort int
}

type trEndpoint struct {
	Addr string
	Node string
}

// trEndpoints are endpoints at the given backend addresses on node.
func trEndpoints(node string, addrs ...string) []trEndpoint {
	out := make([]trEndpoint, len(addrs))
	for i, a := range addrs {
		out[i] = trEndpoint{Addr: a, Node: node}
	}
	return out
}

// backendIP4 is backend i's IPv4 address (10.64.<i+1>.2).
func trBackendIP4(i int) string { return fmt.Sprintf("10.64.%d.2", i+1) }

func trHCLList(xs []string) string {
	q := make([]string, len(xs))
	for i, x := range xs {
		q[i] = fmt.Sprintf("%q", x)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// HCL renders the service block.
func (s trService) HCL() string {
	var b strings.Builder
	fmt.Fprintf(&b, "service %q {\n", s.Name)
	attr := func(k, v string) {
		if v != "" {
			fmt.Fprintf(&b, "  %s = %q\n", k, v)
		}
	}
	list := func(k string, v []string) {
		if len(v) > 0 {
			fmt.Fprintf(&b, "  %s = %s\n", k, trHCLList(v))
		}
	}
	attr("type", s.Type)
	list("cluster_ips", s.ClusterIPs)
	list("external_ips", s.ExternalIPs)
	list("load_balancer_ips", s.LBIPs)
	list("load_balancer_source_ranges", s.LBRanges)
	attr("external_traffic_policy", s.ETP)
	attr("session_affinity", s.Affinity)
	if s.HCNodePort != 0 {
		fmt.Fprintf(&b, "  health_check_node_port = %d\n", s.HCNodePort)
	}
	for _, p := range s.Ports {
		b.WriteString("  port {\n")
		if p.Name != "" {
			fmt.Fprintf(&b, "    name = %q\n", p.Name)
		}
		proto := p.Protocol
		if proto == "" {
			proto = "TCP"
		}
		fmt.Fprintf(&b, "    protocol = %q\n    port = %d\n", proto, p.Port)
		if p.Target != 0 {
			fmt.Fprintf(&b, "    target_port = %d\n", p.Target)
		}
		if p.NodePort != 0 {
			fmt.Fprintf(&b, "    node_port = %d\n", p.NodePort)
		}
		b.WriteString("  }\n")
	}
	for _, e := range s.Endpoints {
		fmt.Fprintf(&b, "  endpoint {\n    address = %q\n    node = %q\n  }\n", e.Addr, e.Node)
	}
	if s.HealthCheck != "" {
		fmt.Fprintf(&b, "  health_check {\n%s\n  }\n", s.HealthCheck)
	}
	b.WriteString("}\n")
	return b.String()
}

// trConfigFiles is a configuration directory's files: the settings (node1,
// the backends' CIDRs) and the services.
func trConfigFiles(ipv6 bool, services ...trService) map[string]string {
	cidrs := []string{"10.64.0.0/14"}
	if ipv6 {
		cidrs = append(cidrs, "fd00:64::/32")
	}
	var b strings.Builder
	for _, s := range services {
		b.WriteString(s.HCL())
	}
	return map[string]string{
		"00-settings.hcl": fmt.Sprintf("settings {\n  node = \"node1\"\n  cluster_cidrs = %s\n}\n", trHCLList(cidrs)),
		"10-services.hcl": b.String(),
	}
}

// trWeb is a TCP service on port 80 with the given cluster IP and endpoints.
func trWeb(name, clusterIP string, eps ...trEndpoint) trService {
	return trService{
		Name:       name,
		ClusterIPs: []string{clusterIP},
		Ports:      []trPort{{Name: "http", Port: 80}},
		Endpoints:  eps,
	}
}
