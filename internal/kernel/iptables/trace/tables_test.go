package trace

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/svcnat/svcnat/internal/kernel/backend"
	"github.com/svcnat/svcnat/internal/kernel/iptables/rules"
	traceview "github.com/svcnat/svcnat/internal/trace"
)

// withDump adds the rules of an iptables-save dump to h's IPv4 rules, after
// the rendered ones (kube-proxy inserts its jumps first; a host's own
// firewall follows), as a host's foreign rules sit beside svcnat's.
func withDump(t *testing.T, h Host, dump string) Host {
	t.Helper()
	add, err := rules.ParseSaveString(backend.IPv4, dump)
	if err != nil {
		t.Fatal(err)
	}
	rs := h.Rules[backend.IPv4]
	if rs == nil {
		rs = &backend.Ruleset{Family: backend.IPv4}
		if h.Rules == nil {
			h.Rules = map[backend.Family]*backend.Ruleset{}
		}
		h.Rules[backend.IPv4] = rs
	}
	for _, at := range add.Tables {
		tb := rs.EnsureTable(at.Name)
		for _, ac := range at.Chains {
			c := tb.EnsureChain(ac.Name)
			if ac.Policy != "" && ac.Policy != "-" {
				c.Policy = ac.Policy
			}
			c.Rules = append(c.Rules, ac.Rules...)
		}
	}
	return h
}

func dumpHost(t *testing.T, dump string, local ...string) Host {
	t.Helper()
	h := Host{}
	for _, a := range local {
		h.Local = append(h.Local, netip.MustParseAddr(a))
	}
	return withDump(t, h, dump)
}

func mustTrace(t *testing.T, h Host, p backend.Packet) *backend.Result {
	t.Helper()
	res, err := h.Trace(p)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// only returns the result's one path, failing when there are more.
func only(t *testing.T, res *backend.Result) backend.Path {
	t.Helper()
	if len(res.Paths) != 1 {
		t.Fatalf("%s: %d paths, want 1:\n%s", res.Packet, len(res.Paths), text(res))
	}
	return res.Paths[0]
}

func text(res *backend.Result) string {
	var b strings.Builder
	traceview.Write(&b, res)
	return b.String()
}

// expect checks a path's verdict, what decided it, and that every rule on
// the way was evaluated.
func expect(t *testing.T, res *backend.Result, verdict backend.Verdict, decidedBy string) {
	t.Helper()
	p := only(t, res)
	if p.Verdict != verdict || traceview.DecidedBy(p) != decidedBy || len(p.Unknown) > 0 {
		t.Errorf("%s: verdict %s decided by %q, not evaluated %q; want %s decided by %q:\n%s",
			res.Packet, p.Verdict, traceview.DecidedBy(p), p.Unknown, verdict, decidedBy, text(res))
	}
}

// Docker 28 and Calico put DROP rules in raw PREROUTING: the kernel drops
// the packet before nat sees it, and trace says so.
func TestRawDropBeforeNAT(t *testing.T) {
	h := withDump(t, host(t, "../../../../examples", "node1", "192.0.2.1"),
		"*raw\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -d 10.32.0.61/32 -p tcp -j DROP\nCOMMIT\n")
	res := mustTrace(t, h, packet("192.0.2.2", "10.32.0.61", "tcp", 80, backend.OriginExternal))
	expect(t, res, backend.Drop, "raw -A PREROUTING -d 10.32.0.61/32 -p tcp -j DROP")
	if p := res.Paths[0]; len(p.Hops) != 1 || p.Hops[0].Table != "raw" || p.Hops[0].End != "DROP" {
		t.Errorf("hops %+v", p.Hops)
	}
	// Another port goes on to nat as before.
	res = mustTrace(t, h, packet("192.0.2.2", "10.32.0.10", "udp", 53, backend.OriginExternal))
	for _, p := range res.Paths {
		if p.Verdict != backend.DNAT {
			t.Errorf("%s:\n%s", res.Packet, text(res))
		}
	}
}

// A packet marked untracked in raw (CT --notrack) is never NATed: nat's
// chains are not consulted for it.
func TestNotrackSkipsNAT(t *testing.T) {
	h := withDump(t, host(t, "../../../../examples", "node1", "192.0.2.1"),
		"*raw\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -d 10.32.0.61/32 -j CT --notrack\nCOMMIT\n")
	res := mustTrace(t, h, packet("192.0.2.2", "10.32.0.61", "tcp", 80, backend.OriginExternal))
	p := only(t, res)
	if p.Verdict != backend.Accept || len(p.Unknown) > 0 || p.Dst.String() != "10.32.0.61:80" {
		t.Fatalf("%s", text(res))
	}
	for _, hp := range p.Hops {
		if hp.Table == "nat" {
			t.Fatalf("an untracked packet went through nat:\n%s", text(res))
		}
	}
}

// Rules of any table that trace cannot evaluate are listed under the
// path, with their table; none is skipped in silence.
func TestUnevaluatedRulesOfEveryTableAreListed(t *testing.T) {
	h := withDump(t, host(t, "../../../../examples", "node1", "192.0.2.1"),
		"*raw\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -m rpfilter --invert -j DROP\nCOMMIT\n"+
			"*mangle\n:FORWARD ACCEPT [0:0]\n-A FORWARD -m socket -j DROP\nCOMMIT\n"+
			"*security\n:FORWARD ACCEPT [0:0]\n-A FORWARD -m policy --dir in --pol ipsec -j DROP\nCOMMIT\n")
	res := mustTrace(t, h, packet("192.0.2.2", "10.32.0.61", "tcp", 80, backend.OriginExternal))
	for _, p := range res.Paths {
		got := strings.Join(p.Unknown, "\n")
		for _, want := range []string{"raw -A PREROUTING -m rpfilter --invert -j DROP (match rpfilter is not evaluated)",
			"mangle -A FORWARD -m socket -j DROP", "security -A FORWARD -m policy"} {
			if !strings.Contains(got, want) {
				t.Errorf("not evaluated lacks %q:\n%s", want, text(res))
			}
		}
		if p.Verdict != backend.DNAT {
			t.Errorf("%s", text(res))
		}
	}
	if !strings.Contains(text(res), "  not evaluated (taken as not matching): raw -A PREROUTING -m rpfilter") {
		t.Errorf("%s", text(res))
	}
}

// A fail2ban host: established traffic, loopback, new SSH and the web
// ports accepted, banned clients rejected, anything else dropped.
const fail2ban = `*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:f2b-sshd - [0:0]
-A INPUT -p tcp -m multiport --dports 22 -j f2b-sshd
-A INPUT -m state --state RELATED,ESTABLISHED -j ACCEPT
-A INPUT -i lo -j ACCEPT
-A INPUT -p tcp -m tcp ! --tcp-flags FIN,SYN,RST,ACK SYN -m state --state NEW -j DROP
-A INPUT -p tcp -m state --state NEW -m tcp --dport 22 -j ACCEPT
-A INPUT -p tcp -m multiport --dports 80,443,8000:8080 -m conntrack --ctstate NEW -j ACCEPT
-A INPUT -p icmp -j ACCEPT
-A INPUT -j DROP
-A f2b-sshd -s 203.0.113.66/32 -j REJECT --reject-with icmp-port-unreachable
-A f2b-sshd -j RETURN
COMMIT
`

func TestFail2banHost(t *testing.T) {
	h := dumpHost(t, fail2ban, "192.0.2.1")
	for _, c := range []struct {
		src     string
		port    int
		origin  backend.Origin
		verdict backend.Verdict
		by      string
	}{
		{"198.51.100.7", 22, backend.OriginExternal, backend.Accept, ""},
		{"203.0.113.66", 22, backend.OriginExternal, backend.Reject, "filter -A f2b-sshd -s 203.0.113.66/32 -j REJECT --reject-with icmp-port-unreachable"},
		{"198.51.100.7", 443, backend.OriginExternal, backend.Accept, ""},
		{"198.51.100.7", 8080, backend.OriginExternal, backend.Accept, ""},
		{"198.51.100.7", 25, backend.OriginExternal, backend.Drop, "filter -A INPUT -j DROP"},
		// From the host itself: loopback is accepted.
		{"192.0.2.1", 25, backend.OriginLocal, backend.Accept, ""},
	} {
		expect(t, mustTrace(t, h, packet(c.src, "192.0.2.1", "tcp", c.port, c.origin)), c.verdict, c.by)
	}
	// Forwarded: FORWARD's policy.
	expect(t, mustTrace(t, h, packet("198.51.100.7", "10.1.2.3", "tcp", 22, backend.OriginExternal)), backend.Drop, "filter FORWARD policy DROP")
}

// Marks set in mangle are what -m mark sees in filter; CONNMARK keeps a
// mark on the connection, which --restore-mark copies back (over the bits
// of its masks only).
func TestMarksAcrossTables(t *testing.T) {
	h := dumpHost(t, `*mangle
:PREROUTING ACCEPT [0:0]
-A PREROUTING -p tcp -m tcp --dport 8443 -j MARK --set-xmark 0x4000/0x4000
-A PREROUTING -p tcp -m tcp --dport 8444 -j CONNMARK --set-xmark 0x7/0xff
-A PREROUTING -j CONNMARK --restore-mark --nfmask 0xff --ctmask 0xff
COMMIT
*filter
:INPUT ACCEPT [0:0]
-A INPUT -m mark --mark 0x4000/0x4000 -j DROP
-A INPUT -m connmark --mark 0x7/0xff -m mark --mark 0x7/0xff -j REJECT --reject-with icmp-port-unreachable
COMMIT
`, "192.0.2.1")
	expect(t, mustTrace(t, h, packet("198.51.100.7", "192.0.2.1", "tcp", 8443, backend.OriginExternal)), backend.Drop, "filter -A INPUT -m mark --mark 0x4000/0x4000 -j DROP")
	expect(t, mustTrace(t, h, packet("198.51.100.7", "192.0.2.1", "tcp", 8444, backend.OriginExternal)), backend.Reject,
		"filter -A INPUT -m connmark --mark 0x7/0xff -m mark --mark 0x7/0xff -j REJECT --reject-with icmp-port-unreachable")
	expect(t, mustTrace(t, h, packet("198.51.100.7", "192.0.2.1", "tcp", 8445, backend.OriginExternal)), backend.Accept, "")
}

// A packet the node sends to one of its own addresses goes on after nat
// POSTROUTING: over loopback through filter INPUT, where kube-proxy
// rejects a node port without endpoints.
func TestLocalOriginToTheNodeCrossesInput(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "empty.hcl"), []byte(`settings {
  node          = "node1"
  cluster_cidrs = ["10.64.0.0/14"]
}
service "default/empty" {
  type        = "NodePort"
  cluster_ips = ["10.32.0.70"]
  port {
    protocol  = "TCP"
    port      = 80
    node_port = 30090
  }
}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	h := host(t, dir, "node1", "192.0.2.1")
	const by = `filter -A SVCNAT-EXTERNAL-SERVICES -p tcp -m comment --comment "default/empty has no endpoints" -m addrtype --dst-type LOCAL -m tcp --dport 30090 -j REJECT --reject-with icmp-port-unreachable`
	for _, dst := range []string{"192.0.2.1", "127.0.0.1"} {
		src := dst
		res := mustTrace(t, h, packet(src, dst, "tcp", 30090, backend.OriginLocal))
		expect(t, res, backend.Reject, by)
		if !strings.Contains(text(res), "  nat    POSTROUTING ==> SVCNAT-POSTROUTING ==> policy ACCEPT\n  back in over lo\n  filter INPUT ==> ") {
			t.Errorf("the way back in is not shown:\n%s", text(res))
		}
		if hops := res.Paths[0].Hops; hops[len(hops)-1].Table != "filter" || hops[len(hops)-1].Hook != "INPUT" {
			t.Errorf("%s", text(res))
		}
	}
	// To a remote address it leaves the node: no INPUT.
	res := mustTrace(t, h, packet("192.0.2.1", "192.0.2.9", "tcp", 30090, backend.OriginLocal))
	expect(t, res, backend.Accept, "")
	for _, hp := range res.Paths[0].Hops {
		if hp.Hook == "INPUT" {
			t.Errorf("%s", text(res))
		}
	}
}

// ufw's and firewalld's address and packet type checks, address ranges,
// protocol numbers and conntrack's direction are evaluated: a unicast packet of a new connection passes
// the broadcast and multicast rules, and is rejected by a UNICAST one.
func TestAddressTypes(t *testing.T) {
	h := dumpHost(t, `*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
-A INPUT -m addrtype --dst-type BROADCAST -j DROP
-A INPUT -m addrtype --dst-type MULTICAST -j DROP
-A INPUT -m pkttype --pkt-type multicast -j DROP
-A INPUT -m conntrack --ctstate NEW --ctdir REPLY -j DROP
-A INPUT -p 6 -m iprange --src-range 198.51.100.1-198.51.100.9 -j REJECT --reject-with icmp-port-unreachable
-A FORWARD -m conntrack --ctstate NEW --ctdir ORIGINAL -m addrtype --dst-type UNICAST -j REJECT --reject-with icmp-port-unreachable
COMMIT
`, "192.0.2.1")
	expect(t, mustTrace(t, h, packet("198.51.100.17", "192.0.2.1", "tcp", 80, backend.OriginExternal)), backend.Accept, "")
	expect(t, mustTrace(t, h, packet("198.51.100.7", "192.0.2.1", "tcp", 80, backend.OriginExternal)), backend.Reject,
		"filter -A INPUT -p 6 -m iprange --src-range 198.51.100.1-198.51.100.9 -j REJECT --reject-with icmp-port-unreachable")
	expect(t, mustTrace(t, h, packet("198.51.100.7", "10.9.9.9", "udp", 80, backend.OriginExternal)), backend.Reject,
		"filter -A FORWARD -m conntrack --ctstate NEW --ctdir ORIGINAL -m addrtype --dst-type UNICAST -j REJECT --reject-with icmp-port-unreachable")
	// A broadcast is delivered locally, where the BROADCAST rule drops it.
	expect(t, mustTrace(t, h, packet("198.51.100.7", "255.255.255.255", "udp", 67, backend.OriginExternal)), backend.Drop,
		"filter -A INPUT -m addrtype --dst-type BROADCAST -j DROP")
}

// Docker 28 drops in raw what reaches a container's address from any
// interface but its bridge: with the packet's in-interface known, -i
// rules are evaluated; without it they are listed, never guessed.
func TestInInterface(t *testing.T) {
	h := dumpHost(t, `*raw
:PREROUTING ACCEPT [0:0]
-A PREROUTING -d 172.17.0.2/32 ! -i docker0 -j DROP
COMMIT
*filter
:FORWARD DROP [0:0]
-A FORWARD -i docker+ -j ACCEPT
COMMIT
`, "192.0.2.1")
	p := packet("198.51.100.7", "172.17.0.2", "tcp", 80, backend.OriginExternal)
	p.InInterface = "eth0"
	expect(t, mustTrace(t, h, p), backend.Drop, "raw -A PREROUTING -d 172.17.0.2/32 ! -i docker0 -j DROP")
	p.InInterface = "docker0"
	expect(t, mustTrace(t, h, p), backend.Accept, "")
	if !strings.HasPrefix(text(mustTrace(t, h, p)), "tcp 198.51.100.7 -> 172.17.0.2:80 (external on docker0)\n") {
		t.Errorf("%s", text(mustTrace(t, h, p)))
	}
	p.InInterface = ""
	res := mustTrace(t, h, p)
	if got := only(t, res); got.Verdict != backend.Drop || len(got.Unknown) != 2 ||
		got.Unknown[0] != "raw -A PREROUTING -d 172.17.0.2/32 ! -i docker0 -j DROP (interface docker0 is not evaluated)" {
		t.Errorf("%s", text(res))
	}
	for _, bad := range []backend.Packet{{Src: p.Src, Dst: p.Dst, Proto: "tcp", DPort: 80, Origin: backend.OriginExternal, InInterface: "lo"},
		{Src: p.Src, Dst: p.Dst, Proto: "tcp", DPort: 80, Origin: backend.OriginLocal, InInterface: "eth0"}} {
		if _, err := h.Trace(bad); err == nil {
			t.Errorf("%s traced", bad)
		}
	}
}
