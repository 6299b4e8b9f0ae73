package config

import (
	"io"
	"math"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// FuzzParse feeds two files through Parse and the checks. Parse must never
// panic; a configuration it accepts must hold only safe names and in-range
// values, whatever the input; and formatting must not change what a file
// means.
func FuzzParse(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/*/*.hcl")
	sort.Strings(seeds)
	var good [][]byte
	for _, n := range seeds {
		src, err := os.ReadFile(n)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(src, []byte(nil))
		if filepath.Base(filepath.Dir(n)) == "good" {
			good = append(good, src)
		}
	}
	if len(good) == 2 {
		f.Add(good[0], good[1])
	}
	for _, tc := range badCases {
		names := make([]string, 0, len(tc.files))
		for n := range tc.files {
			names = append(names, n)
		}
		sort.Strings(names)
		second := []byte(nil)
		if len(names) > 1 {
			second = []byte(tc.files[names[1]])
		}
		f.Add([]byte(tc.files[names[0]]), second)
	}

	f.Fuzz(func(t *testing.T, a, b []byte) {
		checkQuickNesting(t, a)
		checkQuickNesting(t, b)
		files := map[string][]byte{"a.hcl": a, "b.hcl": b}
		cfg, diags := Parse(files)
		if cfg == nil {
			t.Fatal("Parse returned a nil Config")
		}
		for _, d := range diags {
			if d.Summary == "" {
				t.Errorf("diagnostic without a summary: %#v", d)
			}
			if d.Subject != nil && files[d.Subject.Filename] == nil {
				t.Errorf("diagnostic points into unknown file %q", d.Subject.Filename)
			}
		}
		if err := WriteDiagnostics(io.Discard, cfg.Files, diags, true, 80); err != nil {
			t.Fatal(err)
		}
		if diags.HasErrors() {
			if cfg.Services != nil {
				t.Fatal("services returned despite errors")
			}
			return
		}
		checkInvariants(t, cfg)

		// Formatting only re-spaces: the formatted files mean the same.
		fa, fb := Format(a), Format(b)
		cfg2, diags2 := Parse(map[string][]byte{"a.hcl": fa, "b.hcl": fb})
		if diags2.HasErrors() {
			t.Fatalf("formatted input does not parse: %v\n%s\n%s", diags2, fa, fb)
		}
		clearRanges(cfg)
		clearRanges(cfg2)
		if asJSON(t, cfg) != asJSON(t, cfg2) {
			t.Fatalf("formatting changed the configuration:\n%s\n%s", fa, fb)
		}
	})
}

// checkQuickNesting states what lets Load skip hcl's lexer: when
// quickNesting is sure, its bound is never below the depth the tokens
// have. Were it below, a file could nest past MaxNesting unseen and crash
// the parser.
func checkQuickNesting(t *testing.T, src []byte) {
	t.Helper()
	quick, sure := quickNesting(src, math.MaxInt)
	if !sure {
		return
	}
	if exact, _ := tokenNesting("x.hcl", src, math.MaxInt); exact > quick {
		t.Fatalf("quickNesting is sure of depth %d, but the tokens nest %d deep:\n%q", quick, exact, src)
	}
}

// checkInvariants states what an accepted configuration guarantees to the
// renderer: nothing unchecked reaches an iptables-restore line.
func checkInvariants(t *testing.T, cfg *Config) {
	t.Helper()
	s := cfg.Settings
	if !chainPrefixPattern.MatchString(s.ChainPrefix) || len(s.ChainPrefix) > maxChainPrefixLen {
		t.Errorf("chain prefix %q accepted", s.ChainPrefix)
	}
	if s.Node != "" && !ValidNodeName(s.Node) {
		t.Errorf("node %q accepted", s.Node)
	}
	if s.MasqueradeBit < 0 || s.MasqueradeBit > 31 {
		t.Errorf("masquerade bit %d accepted", s.MasqueradeBit)
	}
	r := s.NodePortRange
	if r.Min < 1 || r.Max > 65535 || r.Min > r.Max {
		t.Errorf("node port range %v accepted", r)
	}
	inRange := func(what string, p int) {
		if p < 1 || p > 65535 {
			t.Errorf("%s %d accepted", what, p)
		}
	}
	for i, svc := range cfg.Services {
		if !ValidServiceName(svc.Name) {
			t.Errorf("service name %q accepted", svc.Name)
		}
		if i > 0 && cfg.Services[i-1].Name >= svc.Name {
			t.Errorf("services not sorted or not unique: %q, %q", cfg.Services[i-1].Name, svc.Name)
		}
		if n := len(svc.ClusterIPs); n < 1 || n > 2 {
			t.Errorf("%s: %d cluster IPs accepted", svc.Name, n)
		}
		if len(svc.Ports) == 0 {
			t.Errorf("%s: no ports accepted", svc.Name)
		}
		var all []netip.Addr
		all = append(all, svc.ClusterIPs...)
		all = append(all, svc.ExternalIPs...)
		all = append(all, svc.LoadBalancerIPs...)
		for _, a := range all {
			if !a.IsValid() || a.Zone() != "" || a.Is4In6() {
				t.Errorf("%s: address %v accepted", svc.Name, a)
			}
		}
		if svc.HealthCheckNodePort != 0 {
			inRange("health check node port", svc.HealthCheckNodePort)
			if svc.Type != TypeLoadBalancer || svc.ExternalTrafficPolicy != PolicyLocal {
				t.Errorf("%s: health check node port on a %s service with external traffic policy %s accepted",
					svc.Name, svc.Type, svc.ExternalTrafficPolicy)
			}
		}
		names := map[string]bool{}
		for j, p := range svc.Ports {
			if (p.Name != "" || len(svc.Ports) > 1) && !ValidName(p.Name) {
				t.Errorf("%s: port name %q accepted", svc.Name, p.Name)
			}
			if j > 0 && svc.Ports[j-1].Name >= p.Name {
				t.Errorf("%s: ports not sorted or not unique", svc.Name)
			}
			names[p.Name] = true
			inRange("port", p.Port)
			inRange("target port", p.TargetPort)
			if p.NodePort != 0 && !r.Contains(p.NodePort) {
				t.Errorf("%s: node port %d outside %v accepted", svc.Name, p.NodePort, r)
			}
			switch p.Protocol {
			case ProtoTCP, ProtoUDP, ProtoSCTP:
			default:
				t.Errorf("%s: protocol %q accepted", svc.Name, p.Protocol)
			}
		}
		if hc := svc.HealthCheck; hc != nil {
			checkHealthCheckInvariants(t, svc, hc)
		}
		for _, e := range svc.Endpoints {
			if !e.Address.IsValid() || e.Address.Zone() != "" {
				t.Errorf("%s: endpoint address %v accepted", svc.Name, e.Address)
			}
			if e.Node != "" && !ValidNodeName(e.Node) {
				t.Errorf("%s: node %q accepted", svc.Name, e.Node)
			}
			for k, v := range e.Ports {
				if !names[k] {
					t.Errorf("%s: endpoint port key %q accepted", svc.Name, k)
				}
				inRange("endpoint port", v)
			}
		}
	}
}

// checkHealthCheckInvariants states what an accepted health_check
// guarantees to the checker: a port to check on every endpoint, a timeout
// within the interval, and nothing unchecked in a request.
func checkHealthCheckInvariants(t *testing.T, svc *Service, hc *HealthCheck) {
	t.Helper()
	if hc.Interval < minCheckInterval || hc.Interval > maxCheckInterval || hc.Timeout <= 0 || hc.Timeout > hc.Interval {
		t.Errorf("%s: interval %s, timeout %s accepted", svc.Name, hc.Interval, hc.Timeout)
	}
	if hc.Rise < 1 || hc.Rise > maxCheckCount || hc.Fall < 1 || hc.Fall > maxCheckCount {
		t.Errorf("%s: rise %d, fall %d accepted", svc.Name, hc.Rise, hc.Fall)
	}
	if len(hc.Path) > MaxCheckText || len(hc.Send) > MaxCheckText || len(hc.Expect) > MaxCheckText {
		t.Errorf("%s: check text of %d, %d, %d bytes accepted", svc.Name, len(hc.Path), len(hc.Send), len(hc.Expect))
	}
	switch hc.Protocol {
	case CheckHTTP:
		if !strings.HasPrefix(hc.Path, "/") || strings.ContainsAny(hc.Path, " \r\n") || hc.Send != "" || hc.Expect != "" {
			t.Errorf("%s: http check %+v accepted", svc.Name, hc)
		}
	case CheckTCP, CheckUDP:
		if hc.Path != "" || (hc.Protocol == CheckTCP) != (hc.Send == "" && hc.Expect == "") {
			t.Errorf("%s: %s check %+v accepted", svc.Name, hc.Protocol, hc)
		}
	default:
		t.Errorf("%s: check protocol %q accepted", svc.Name, hc.Protocol)
	}
	if hc.Port < 0 || hc.Port > 65535 || (hc.Port != 0 && hc.ServicePort != "") {
		t.Errorf("%s: check port %d (service port %q) accepted", svc.Name, hc.Port, hc.ServicePort)
	}
	if hc.Port == 0 {
		found := false
		for _, p := range svc.Ports {
			if p.Name == hc.ServicePort {
				found = true
				if p.Protocol != checkTransport(hc.Protocol) {
					t.Errorf("%s: %s check of %s port %q accepted", svc.Name, hc.Protocol, p.Protocol, p.Name)
				}
			}
		}
		if !found {
			t.Errorf("%s: check of no service port (%q) accepted", svc.Name, hc.ServicePort)
		}
	}
}

// The good configuration satisfies the invariants the fuzz target checks.
func TestGoodInvariants(t *testing.T) {
	cfg, diags := Load("testdata/good")
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	checkInvariants(t, cfg)
}
