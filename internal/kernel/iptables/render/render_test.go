package render

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/svcnat/svcnat/internal/config"
	"github.com/svcnat/svcnat/internal/kernel/backend"
	"github.com/svcnat/svcnat/internal/kernel/iptables/rules"
	"github.com/svcnat/svcnat/internal/kernel/iptables/vocab"
)

func mustRenderWritten(t *testing.T, c *config.Config, o Options) *Result {
	t.Helper()
	res, err := RenderWritten(c, o)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// allRules returns every rule of rs as iptables-save lines.
func allRules(rs *backend.Ruleset) []string {
	var out []string
	for _, t := range rs.Tables {
		for _, c := range t.Chains {
			for _, r := range c.Rules {
				out = append(out, t.Name+" "+r.String())
			}
		}
	}
	return out
}

func chainRules(t *testing.T, rs *backend.Ruleset, table, chain string) []string {
	t.Helper()
	c := rs.Table(table).Chain(chain)
	if c == nil {
		t.Fatalf("%s %s: no such chain", table, chain)
	}
	return ruleStrings(c)
}

// With chain_prefix SVCNAT the rules are kube-proxy's with KUBE replaced
// in chain names and "kubernetes" by "svcnat" in comments, nothing else.
func TestChainPrefixSVCNAT(t *testing.T) {
	kube := mustRenderWritten(t, overallConfig(kubeSettings()), upstreamOpts())
	s := kubeSettings()
	s.ChainPrefix = "SVCNAT"
	svcnat := mustRenderWritten(t, overallConfig(s), upstreamOpts())

	replace := strings.NewReplacer("KUBE-", "SVCNAT-", "kubernetes", "svcnat")
	var want []string
	for _, l := range allRules(kube.Rulesets[backend.IPv4]) {
		want = append(want, replace.Replace(l))
	}
	got := allRules(svcnat.Rulesets[backend.IPv4])
	if !slices.Equal(want, got) {
		t.Errorf("SVCNAT rules are not KUBE's renamed:\nwant:\n%s\ngot:\n%s", strings.Join(want, "\n"), strings.Join(got, "\n"))
	}
	for _, l := range got {
		if strings.Contains(l, "KUBE") || strings.Contains(l, "kubernetes") {
			t.Errorf("rule still names kube-proxy: %s", l)
		}
	}
	for _, tbl := range svcnat.Rulesets[backend.IPv4].Tables {
		for _, c := range tbl.Chains {
			if !c.Builtin() && !strings.HasPrefix(c.Name, "SVCNAT-") {
				t.Errorf("chain %s lacks the prefix", c.Name)
			}
		}
	}
	wantJump := `-A PREROUTING -m comment --comment "svcnat service portals" -j SVCNAT-SERVICES`
	if got := chainRules(t, svcnat.Rulesets[backend.IPv4], "nat", "PREROUTING"); !slices.Equal(got, []string{wantJump}) {
		t.Errorf("nat PREROUTING = %q", got)
	}
	if !slices.Contains(got, `nat -A SVCNAT-FW-NUKIZ6OKUXPJNT4C -m comment --comment "other traffic to ns5/svc5:p80 will be dropped by SVCNAT-PROXY-FIREWALL"`) {
		t.Error("FW chain comment does not name SVCNAT-PROXY-FIREWALL")
	}
}

// Every chain name, jump target and recent list name fits iptables' 28
// characters for the longest prefix allowed, and longer prefixes are refused.
func TestChainNamesFit(t *testing.T) {
	for _, prefix := range []string{"KUBE", "SVCNAT", "ABCDEF"} {
		for _, tc := range goldenCases() {
			c := *tc.cfg
			c.Settings.ChainPrefix = prefix
			res := mustRenderWritten(t, &c, tc.opts)
			for _, rs := range res.Rulesets {
				for _, tbl := range rs.Tables {
					for _, ch := range tbl.Chains {
						check := []string{ch.Name}
						for _, r := range ch.Rules {
							for i, a := range r.Args {
								if i > 0 && (r.Args[i-1] == "-j" || r.Args[i-1] == "--name") {
									check = append(check, a)
								}
							}
						}
						for _, n := range check {
							if len(n) > rules.MaxChainNameLen {
								t.Errorf("%s/%s: %q has %d characters", prefix, tc.name, n, len(n))
							}
						}
					}
				}
			}
		}
	}
	for _, bad := range []string{"ABCDEFG", "", "kube", "A-B", "1AB"} {
		s := kubeSettings()
		s.ChainPrefix = bad
		if _, err := RenderWritten(cfg(s), Options{}); err == nil {
			t.Errorf("prefix %q accepted", bad)
		}
	}
}

// The IPv6 ruleset exists only when some service has an IPv6 cluster IP;
// the IPv4 one always, with its fixed chains.
func TestFamilies(t *testing.T) {
	empty := mustRenderWritten(t, cfg(kubeSettings()), Options{})
	if _, ok := empty.Rulesets[backend.IPv6]; ok {
		t.Error("IPv6 ruleset rendered without IPv6 services")
	}
	v4 := empty.Rulesets[backend.IPv4]
	if v4 == nil || v4.Table("nat").Chain("KUBE-POSTROUTING") == nil || v4.Table("filter").Chain("KUBE-FORWARD") == nil {
		t.Fatal("IPv4 ruleset lacks the fixed chains")
	}
	if names := tableNames(v4); !slices.Equal(names, []string{"filter", "nat"}) {
		t.Errorf("tables %v, want filter then nat", names)
	}
	v6 := mustRenderWritten(t, cfg(kubeSettings(), localNodePortService("fd00:ab34::20", "ff06::c1", "ff06::c2")), upstreamOpts())
	if v6.Rulesets[backend.IPv6] == nil {
		t.Fatal("no IPv6 ruleset for an IPv6 service")
	}
	if c := v6.Rulesets[backend.IPv6].Table("filter").Chain("KUBE-FIREWALL"); c != nil {
		t.Error("IPv6 has a KUBE-FIREWALL chain")
	}
	for _, l := range allRules(v6.Rulesets[backend.IPv4]) {
		if strings.Contains(l, "ns1/svc1") {
			t.Errorf("IPv6-only service in the IPv4 ruleset: %s", l)
		}
	}
}

// ChainService maps every per-service chain, and nothing else, to its service.
func TestChainServiceIndex(t *testing.T) {
	res := mustRenderWritten(t, overallConfig(kubeSettings()), upstreamOpts())
	for _, tbl := range res.Rulesets[backend.IPv4].Tables {
		for _, c := range tbl.Chains {
			owner, ok := res.ChainService[c.Name]
			perService := slices.ContainsFunc([]string{"-SVC-", "-SVL-", "-EXT-", "-FW-", "-SEP-"}, func(p string) bool { return strings.HasPrefix(c.Name, "KUBE"+p) })
			if perService != ok {
				t.Errorf("%s %s: in index = %v", tbl.Name, c.Name, ok)
			}
			if ok && c.Rules[0].Comment() != "" && !strings.Contains(c.Rules[0].Comment(), owner) {
				t.Errorf("%s owned by %s but its first rule says %q", c.Name, owner, c.Rules[0].Comment())
			}
		}
	}
	for chain, want := range map[string]string{"KUBE-FW-NUKIZ6OKUXPJNT4C": "ns5/svc5", "KUBE-SEP-I77PXRDZVX7PMWMN": "ns5/svc5", "KUBE-EXT-GNZBNJ2PO5MGZ6GT": "ns2/svc2"} {
		if got := res.ChainService[chain]; got != want {
			t.Errorf("ChainService[%s] = %q, want %q", chain, got, want)
		}
	}
}

// masquerade_all marks every cluster-IP connection; without cluster CIDRs
// there is no "pod traffic" short circuit.
func TestMasqueradeAll(t *testing.T) {
	s := kubeSettings(noClusterCIDR)
	s.MasqueradeAll = true
	rs := mustRenderWritten(t, overallConfig(s), upstreamOpts()).Rulesets[backend.IPv4]
	want := `-A KUBE-SVC-XPGD46QRK7WJZT7O -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp -d 172.30.0.41 --dport 80 -j KUBE-MARK-MASQ`
	if got := chainRules(t, rs, "nat", "KUBE-SVC-XPGD46QRK7WJZT7O"); got[0] != want {
		t.Errorf("masquerade_all rule = %s", got[0])
	}
	for _, r := range chainRules(t, rs, "nat", "KUBE-EXT-GNZBNJ2PO5MGZ6GT") {
		if strings.Contains(r, "pod traffic") {
			t.Errorf("short circuit without a cluster CIDR: %s", r)
		}
	}
}

// Only the first cluster CIDR of each family is used, as kube-proxy
// supports one per family.
func TestClusterCIDRFirstOfFamily(t *testing.T) {
	s := kubeSettings()
	s.ClusterCIDRs = prefixes("fd00:10::/64", "10.64.0.0/14", "10.128.0.0/14")
	svc := newService("ns/a", config.TypeClusterIP, "10.32.0.1", func(s *config.Service) {
		s.ClusterIPs = ips("10.32.0.1", "fd00:32::1")
		s.Ports = []*config.Port{tcp("", 80, 0)}
		s.Endpoints = []*config.Endpoint{ep("10.64.0.5", ""), ep("fd00:10::5", "")}
	})
	res := mustRenderWritten(t, cfg(s, svc), Options{})
	chain := vocab.For("KUBE").PortChains(vocab.ServicePortName(svc.Name, svc.Ports[0].Name), svc.Ports[0].Protocol).SVC
	for fam, want := range map[backend.Family]string{backend.IPv4: "! -s 10.64.0.0/14 -j", backend.IPv6: "! -s fd00:10::/64 -j"} {
		if got := chainRules(t, res.Rulesets[fam], "nat", chain)[0]; !strings.Contains(got, want) {
			t.Errorf("%s masquerade rule %s lacks %q", fam, got, want)
		}
	}
}

// Endpoints are ordered as kube-proxy's byEndpoint: by the ip:port string,
// so "10.0.0.10:80" comes before "10.0.0.1:80" (':' sorts after '0').
func TestEndpointStringOrder(t *testing.T) {
	svc := newService("ns/a", config.TypeClusterIP, "172.30.0.1", func(s *config.Service) {
		s.Ports = []*config.Port{tcp("", 80, 0)}
		s.Endpoints = []*config.Endpoint{ep("10.0.0.2", ""), ep("10.0.0.10", ""), ep("10.0.0.1", "")}
	})
	rs := mustRenderWritten(t, cfg(kubeSettings(), svc), Options{}).Rulesets[backend.IPv4]
	var order []string
	for _, r := range chainRules(t, rs, "nat", vocab.For("KUBE").PortChains(vocab.ServicePortName(svc.Name, svc.Ports[0].Name), svc.Ports[0].Protocol).SVC)[1:] {
		order = append(order, r[strings.Index(r, "-> ")+3:strings.Index(r, ":80")])
	}
	if want := []string{"10.0.0.10", "10.0.0.1", "10.0.0.2"}; !slices.Equal(order, want) {
		t.Errorf("endpoint order %v, want %v", order, want)
	}
}

// Above 1000 endpoints in a family, kube-proxy drops the comments of the
// per-endpoint rules, and only those.
func TestLargeClusterMode(t *testing.T) {
	for _, n := range []int{1000, 1001} {
		svc := newService("ns/big", config.TypeClusterIP, "172.30.0.1", func(s *config.Service) {
			s.Ports = []*config.Port{tcp("", 80, 0)}
			for i := 0; i < n; i++ {
				s.Endpoints = append(s.Endpoints, ep(fmt.Sprintf("10.1.%d.%d", i/250, i%250+1), ""))
			}
		})
		res := mustRenderWritten(t, cfg(kubeSettings(), svc), Options{})
		rs := res.Rulesets[backend.IPv4]
		svcRules := chainRules(t, rs, "nat", vocab.For("KUBE").PortChains(vocab.ServicePortName(svc.Name, svc.Ports[0].Name), svc.Ports[0].Protocol).SVC)
		if !strings.Contains(svcRules[0], "cluster IP") {
			t.Errorf("n=%d: masquerade rule lost its comment: %s", n, svcRules[0])
		}
		large := n > largeClusterEndpointsThreshold
		if got := strings.Contains(svcRules[1], "--comment"); got == large {
			t.Errorf("n=%d: endpoint rule %s", n, svcRules[1])
		}
		sep := vocab.For("KUBE").EndpointChain(vocab.ServicePortName(svc.Name, svc.Ports[0].Name), svc.Ports[0].Protocol, "10.1.0.1:80")
		for _, r := range chainRules(t, rs, "nat", sep) {
			if got := strings.Contains(r, "--comment"); got == large {
				t.Errorf("n=%d: SEP rule %s", n, r)
			}
		}
		if n == 1001 && !strings.HasSuffix(svcRules[len(svcRules)-2], "--probability 0.5000000000 -j "+svcRules[len(svcRules)-2][strings.LastIndex(svcRules[len(svcRules)-2], " ")+1:]) {
			t.Errorf("second to last endpoint rule: %s", svcRules[len(svcRules)-2])
		}
	}
}

// The mark is written as kube-proxy writes it and echoed as the kernel does.
func TestMasqueradeMark(t *testing.T) {
	s := kubeSettings()
	s.MasqueradeBit = 5
	written := mustRenderWritten(t, cfg(s), Options{RandomFully: true}).Rulesets[backend.IPv4]
	if got := chainRules(t, written, "nat", "KUBE-MARK-MASQ"); got[0] != "-A KUBE-MARK-MASQ -j MARK --or-mark 0x00000020" {
		t.Errorf("written mark rule %s", got[0])
	}
	res, err := Render(cfg(s), Options{RandomFully: true})
	if err != nil {
		t.Fatal(err)
	}
	canon := res.Rulesets[backend.IPv4]
	want := []string{
		"-A KUBE-POSTROUTING -m mark ! --mark 0x20/0x20 -j RETURN",
		"-A KUBE-POSTROUTING -j MARK --set-xmark 0x20/0x0",
		`-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully`,
	}
	if got := chainRules(t, canon, "nat", "KUBE-POSTROUTING"); !slices.Equal(got, want) {
		t.Errorf("KUBE-POSTROUTING = %q", got)
	}
	s.MasqueradeBit = 32
	if _, err := RenderWritten(cfg(s), Options{}); err == nil {
		t.Error("masquerade bit 32 accepted")
	}
}

// The built-in chains get kube-proxy's jumps in the order its "insert at 1"
// leaves them on a fresh host.
func TestBuiltinJumpOrder(t *testing.T) {
	rs := mustRenderWritten(t, cfg(kubeSettings()), Options{}).Rulesets[backend.IPv4]
	want := map[string][]string{
		"filter INPUT":    {"KUBE-FIREWALL", "KUBE-PROXY-FIREWALL", "KUBE-NODEPORTS", "KUBE-EXTERNAL-SERVICES"},
		"filter FORWARD":  {"KUBE-PROXY-FIREWALL", "KUBE-FORWARD", "KUBE-SERVICES", "KUBE-EXTERNAL-SERVICES"},
		"filter OUTPUT":   {"KUBE-FIREWALL", "KUBE-PROXY-FIREWALL", "KUBE-SERVICES"},
		"nat PREROUTING":  {"KUBE-SERVICES"},
		"nat OUTPUT":      {"KUBE-SERVICES"},
		"nat POSTROUTING": {"KUBE-POSTROUTING"},
	}
	for key, targets := range want {
		table, chain, _ := strings.Cut(key, " ")
		var got []string
		for _, r := range rs.Table(table).Chain(chain).Rules {
			got = append(got, r.Target())
		}
		if !slices.Equal(got, targets) {
			t.Errorf("%s jumps to %v, want %v", key, got, targets)
		}
	}
	noFW := mustRenderWritten(t, cfg(kubeSettings(localhostNodePorts(false))), Options{}).Rulesets[backend.IPv4]
	if noFW.Table("filter").Chain("KUBE-FIREWALL") != nil || slices.ContainsFunc(noFW.Table("filter").Chain("INPUT").Rules, func(r backend.Rule) bool { return r.Target() == "KUBE-FIREWALL" }) {
		t.Error("KUBE-FIREWALL rendered without localhost node ports")
	}
}

// svcnat creates no nfacct objects, so no rule may use them.
func TestNoNfacct(t *testing.T) {
	for _, tc := range goldenCases() {
		for _, rs := range mustRenderWritten(t, tc.cfg, tc.opts).Rulesets {
			for _, l := range allRules(rs) {
				if strings.Contains(l, "nfacct") {
					t.Errorf("%s: %s", tc.name, l)
				}
			}
		}
	}
}
