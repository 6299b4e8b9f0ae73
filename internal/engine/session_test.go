package engine

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/svcnat/svcnat/internal/bench"
	"github.com/svcnat/svcnat/internal/config"
	"github.com/svcnat/svcnat/internal/health"
	"github.com/svcnat/svcnat/internal/kernel/backend"
	"github.com/svcnat/svcnat/internal/kernel/iptables"
	"github.com/svcnat/svcnat/internal/kernel/nftables"
	"github.com/svcnat/svcnat/internal/state"
)

// sessionKernels are the backends' fakes a session is tested on.
var sessionKernels = map[string]func() backend.Kernel{
	"iptables-nft": func() backend.Kernel { return iptables.NewFake() },
	"iptables-legacy": func() backend.Kernel {
		f := iptables.NewFake()
		f.SetBackend(iptables.Legacy)
		return f
	},
	"nftables": func() backend.Kernel { return nftables.NewFake("") },
}

// sessionHost is an engine on a fake with the configuration applied and a
// session started from its empty plan.
type sessionHost struct {
	e       *Engine
	cleaner *cleaner
	cfg     *config.Config
	s       *Session
	// fallbacks counts the updates that needed a full pass.
	fallbacks int
}

func newSessionHost(t *testing.T, k backend.Kernel, cfg *config.Config) *sessionHost {
	t.Helper()
	h := &sessionHost{cleaner: &cleaner{}, cfg: cfg}
	h.e = &Engine{Host: Host{Kernel: k, Conntrack: h.cleaner}, StateDir: t.TempDir()}
	if _, err := h.e.Apply(context.Background(), cfg, bench.Node); err != nil {
		t.Fatal(err)
	}
	h.restart(t)
	return h
}

// restart starts a new session after a full pass.
func (h *sessionHost) restart(t *testing.T) {
	t.Helper()
	p, err := h.e.Plan(h.cfg, bench.Node)
	if err != nil {
		t.Fatal(err)
	}
	if !p.Empty() {
		t.Fatalf("the plan after a full pass is not empty: %d changes", len(p.Changes))
	}
	if h.s, err = h.e.NewSession(p, h.cfg, bench.Node); err != nil {
		t.Fatal(err)
	}
}

// update applies cfg, where the services changed differ, with the
// session, or with a full apply when it needs one; it says which.
func (h *sessionHost) update(t *testing.T, cfg *config.Config, changed []string) (full bool, res *Result) {
	t.Helper()
	res, err := h.s.Update(context.Background(), cfg, changed)
	h.cfg = cfg
	switch {
	case errors.Is(err, ErrNeedFull):
		h.fallbacks++
		t.Logf("full pass: %v", err)
		if _, err := h.e.Apply(context.Background(), cfg, bench.Node); err != nil {
			t.Fatal(err)
		}
		h.restart(t)
		return true, nil
	case err != nil:
		t.Fatal(err)
	}
	return false, res
}

// check holds the kernel to a full render of the configuration: its
// owned objects are the render's, and a full plan is empty.
func (h *sessionHost) check(t *testing.T, what string) {
	t.Helper()
	r, err := h.e.Render(h.cfg, RenderFor{Node: bench.Node})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range backend.Families {
		live, err := h.e.Kernel.Read(f, nil)
		if err != nil {
			t.Fatal(err)
		}
		want := r.Rulesets[f]
		if want == nil {
			want = &backend.Ruleset{Family: f, Syntax: live.Syntax}
		}
		if got, want := objectsText(live), objectsText(want); got != want {
			t.Fatalf("after %s, the %s rules are not a full render's:\n%s", what, f, lineDiff(want, got))
		}
	}
	p, err := h.e.Plan(h.cfg, bench.Node)
	if err != nil {
		t.Fatal(err)
	}
	if !p.Empty() {
		t.Fatalf("after %s, a full plan has %d changes", what, len(p.Changes))
	}
}

// objectsText is the owned objects of rs as text, without the tables
// that hold none (a full apply leaves nftables' emptied table in place).
func objectsText(rs *backend.Ruleset) string {
	owned := rs.Owned("SVCNAT")
	owned.Tables = slices.DeleteFunc(slices.Clone(owned.Tables), func(t *backend.Table) bool { return len(t.Chains) == 0 })
	return owned.Text()
}

// lineDiff lists the lines only in want (-) or only in got (+).
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	for _, l := range w {
		if !slices.Contains(g, l) {
			b.WriteString("- " + l + "\n")
		}
	}
	for _, l := range g {
		if !slices.Contains(w, l) {
			b.WriteString("+ " + l + "\n")
		}
	}
	return b.String()
}

// benchConfig is internal/bench's configuration of n services with e
// endpoints each.
func benchConfig(t testing.TB, n, e int) *config.Config {
	t.Helper()
	srcs := map[string][]byte{}
	for name, body := range bench.Files(bench.Spec{Services: n, Endpoints: e}) {
		srcs[name] = []byte(body)
	}
	cfg, diags := config.Parse(srcs)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	return cfg
}

// extras are services of every kind the generated ones lack, some
// sharing set elements: dual-stack (the only IPv6 one), a load balancer
// with source ranges, a health-check node port and external IPs, UDP,
// internal policy Local, a cluster IP two services share on two ports,
// and an endpoint two services reach on one port (one hairpin entry).
const extras = `
service "ns000/zlb" {
  type                        = "LoadBalancer"
  cluster_ips                 = ["10.96.200.1", "fd00:96::1"]
  external_ips                = ["192.0.2.20"]
  load_balancer_ips           = ["192.0.2.10", "2001:db8::10"]
  load_balancer_source_ranges = ["198.51.100.0/24", "2001:db8:1::/48"]
  external_traffic_policy     = "Local"
  health_check_node_port      = 32100
  session_affinity            = "ClientIP"
  port {
    name        = "https"
    port        = 443
    target_port = 8443
    node_port   = 32443
  }
  port {
    name      = "dns"
    protocol  = "UDP"
    port      = 53
    node_port = 32053
  }
  endpoint {
    address = "10.64.200.1"
    node    = "node1"
  }
  endpoint {
    address = "10.64.200.2"
    node    = "node2"
  }
  endpoint {
    address = "fd00:64::1"
    node    = "node1"
  }
  endpoint {
    address = "fd00:64::2"
    node    = "node2"
  }
}

service "ns000/svc10a" {
  cluster_ips             = ["10.96.200.2"]
  internal_traffic_policy = "Local"
  port {
    port = 8443
  }
  endpoint {
    address = "10.64.200.1"
    node    = "node1"
  }
  endpoint {
    address = "10.64.200.3"
    node    = "node2"
  }
}

service "ns000/svc10b" {
  cluster_ips = ["10.96.200.2"]
  port {
    port        = 81
    target_port = 8081
  }
  endpoint {
    address = "10.64.200.4"
    node    = "node1"
  }
}
`

// mixedConfig is benchConfig's n services with e endpoints and extras.
func mixedConfig(t testing.TB, n, e int) *config.Config {
	t.Helper()
	srcs := map[string][]byte{"zz-extras.hcl": []byte(extras)}
	for name, body := range bench.Files(bench.Spec{Services: n, Endpoints: e}) {
		srcs[name] = []byte(body)
	}
	cfg, diags := config.Parse(srcs)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	return cfg
}

// edited is cfg with service i replaced by what edit makes of a copy of
// it (nil removes it).
func edited(cfg *config.Config, name string, edit func(s *config.Service) *config.Service) *config.Config {
	out := *cfg
	out.Services = nil
	for _, s := range cfg.Services {
		if s.Name != name {
			out.Services = append(out.Services, s)
			continue
		}
		c := *s
		c.Endpoints = nil
		for _, e := range s.Endpoints {
			ce := *e
			c.Endpoints = append(c.Endpoints, &ce)
		}
		if n := edit(&c); n != nil {
			out.Services = append(out.Services, n)
		}
	}
	return &out
}

// withService is cfg with svc added, in name order.
func withService(cfg *config.Config, svc *config.Service) *config.Config {
	out := *cfg
	out.Services = append(slices.Clone(cfg.Services), svc)
	slices.SortFunc(out.Services, func(a, b *config.Service) int { return strings.Compare(a.Name, b.Name) })
	return &out
}

// newService is a ClusterIP service of one port and two endpoints, of a
// name and addresses made from n.
func newService(n int, proto string) *config.Service {
	s := &config.Service{
		Name: fmt.Sprintf("ns%03d/added%d", n%7, n), Type: config.TypeClusterIP,
		ClusterIPs:            []netip.Addr{netip.AddrFrom4([4]byte{10, 100, byte(n >> 8), byte(n)})},
		ExternalTrafficPolicy: config.PolicyCluster, InternalTrafficPolicy: config.PolicyCluster,
		SessionAffinity: config.AffinityNone,
		Ports:           []*config.Port{{Protocol: proto, Port: 53, TargetPort: 5353}},
	}
	for e := range 2 {
		s.Endpoints = append(s.Endpoints, &config.Endpoint{Address: netip.AddrFrom4([4]byte{10, 101, byte(n), byte(e + 1)}),
			Node: bench.Node, Ready: true, Serving: true})
	}
	return s
}

// TestSessionMatchesFullRender is the judge of incremental updates: on
// each backend's fake, random edits of a generated configuration applied
// by Session.Update (a full apply where it says it needs one) leave the
// kernel exactly as a full render of the configuration, with a full plan
// empty; and one endpoint of several going down or up never needs a full
// pass.
func TestSessionMatchesFullRender(t *testing.T) {
	for name, kernel := range sessionKernels {
		t.Run(name, func(t *testing.T) {
			for seed := range uint64(3) {
				rng := rand.New(rand.NewPCG(seed, 25))
				cfg := benchConfig(t, 60, 3)
				if seed > 0 {
					cfg = mixedConfig(t, 40, 3)
				}
				h := newSessionHost(t, kernel(), cfg)
				added := 0
				for step := range 30 {
					cfg := h.cfg
					svc := cfg.Services[rng.IntN(len(cfg.Services))]
					if seed > 0 && rng.IntN(3) == 0 { // the extras, more often
						svc = cfg.Services[rng.IntN(min(3, len(cfg.Services)))]
						for _, s := range cfg.Services {
							if s.Name == "ns000/zlb" && rng.IntN(2) == 0 {
								svc = s
							}
						}
					}
					extra := strings.Contains(svc.Name, "svc10a") || strings.Contains(svc.Name, "svc10b") || strings.Contains(svc.Name, "zlb")
					var next *config.Config
					what, common := "", false
					switch kind := rng.IntN(6); {
					case kind <= 1 && len(svc.Endpoints) > 0: // the common case: one endpoint's verdict
						i := rng.IntN(len(svc.Endpoints))
						up := 0
						for j, e := range svc.Endpoints {
							if j != i && e.Ready {
								up++
							}
						}
						common = up > 0 && !extra
						what = fmt.Sprintf("%s endpoint %d flipped", svc.Name, i)
						next = edited(cfg, svc.Name, func(s *config.Service) *config.Service {
							e := s.Endpoints[i]
							e.Ready, e.Serving = !e.Ready, !e.Ready
							return s
						})
					case kind == 2:
						what = svc.Name + " endpoint added"
						next = edited(cfg, svc.Name, func(s *config.Service) *config.Service {
							n := len(s.Endpoints) + step*16
							s.Endpoints = append(s.Endpoints, &config.Endpoint{Address: netip.AddrFrom4([4]byte{10, 120, byte(n >> 8), byte(n)}),
								Node: "node2", Ready: true, Serving: true})
							return s
						})
					case kind == 3 && len(svc.Endpoints) > 0:
						what = svc.Name + " endpoint removed"
						next = edited(cfg, svc.Name, func(s *config.Service) *config.Service {
							s.Endpoints = s.Endpoints[1:]
							return s
						})
					case kind == 4:
						for _, down := range []bool{true, false} {
							what = fmt.Sprintf("%s all endpoints down=%v", svc.Name, down)
							next = edited(h.cfg, svc.Name, func(s *config.Service) *config.Service {
								for _, e := range s.Endpoints {
									e.Ready, e.Serving = !down, !down
								}
								return s
							})
							h.update(t, next, []string{svc.Name})
							h.check(t, what)
						}
						continue
					default:
						if rng.IntN(2) == 0 {
							added++
							s := newService(step+int(seed)*100, []string{config.ProtoTCP, config.ProtoUDP}[rng.IntN(2)])
							what = s.Name + " added"
							next = withService(cfg, s)
							h.update(t, next, []string{s.Name})
							h.check(t, what)
							continue
						}
						what = svc.Name + " removed"
						next = edited(cfg, svc.Name, func(*config.Service) *config.Service { return nil })
					}
					full, _ := h.update(t, next, []string{svc.Name})
					if full && common {
						t.Errorf("step %d: %s needed a full pass", step, what)
					}
					h.check(t, what)
				}
				t.Logf("seed %d: %d full passes of 30 steps or more", seed, h.fallbacks)
			}
		})
	}
}

// verdict is cfg with the endpoint i of service name down by a health
// check, as reconcile renders it (health.Overlay).
func verdict(cfg *config.Config, name string, i int, down bool) *config.Config {
	var svc *config.Service
	for _, s := range cfg.Services {
		if s.Name == name {
			svc = s
		}
	}
	hc := *svc
	hc.HealthCheck = &config.HealthCheck{Protocol: config.CheckTCP}
	base := edited(cfg, name, func(*config.Service) *config.Service { return &hc })
	v := &health.View{Endpoints: map[health.Key]health.Status{{Service: name, Endpoint: svc.Endpoints[i].Address}: {Up: !down, Checked: true}}}
	return health.Overlay(base, v)
}

// TestSessionVerdictLines: one endpoint's verdict writes fewer than 20
// lines on every backend, records no generation, and touches no other
// service.
func TestSessionVerdictLines(t *testing.T) {
	for name, kernel := range sessionKernels {
		t.Run(name, func(t *testing.T) {
			h := newSessionHost(t, kernel(), benchConfig(t, 60, 5))
			gen := h.state(t).Generation
			cfg := h.cfg
			svc := cfg.Services[11].Name
			for _, down := range []bool{true, false, true} {
				full, res := h.update(t, verdict(cfg, svc, 2, down), []string{svc})
				if full {
					t.Fatalf("a verdict needed a full pass")
				}
				if !res.Applied || res.Lines == 0 || res.Lines >= 20 {
					t.Errorf("a verdict (down=%v) wrote %d lines (applied %v); want 1 to 19", down, res.Lines, res.Applied)
				}
				for _, c := range res.Plan.Changes {
					if o := h.s.service[objKey{c.Family, c.Table, c.Chain}]; o != "" && o != svc {
						t.Errorf("a verdict on %s changed %s's %s", svc, o, c.Chain)
					}
				}
				h.check(t, fmt.Sprintf("down=%v", down))
			}
			if g := h.state(t).Generation; g != gen {
				t.Errorf("updates recorded generation %d (was %d)", g, gen)
			}
		})
	}
}

func (h *sessionHost) state(t *testing.T) *state.State {
	t.Helper()
	st, err := h.e.State()
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// TestSessionRollback: a transaction the kernel refuses leaves the
// kernel as it was, and the session unusable.
func TestSessionRollback(t *testing.T) {
	for name, kernel := range sessionKernels {
		t.Run(name, func(t *testing.T) {
			k := kernel()
			h := newSessionHost(t, k, benchConfig(t, 30, 3))
			before := map[backend.Family]string{}
			for _, f := range backend.Families {
				rs, _ := k.Read(f, nil)
				before[f] = rs.Text()
			}
			fail := func(line string) bool { return strings.Contains(line, "10.120.0.9") }
			switch f := k.(type) {
			case *iptables.Fake:
				f.FailWhen(fail)
			case *nftables.Fake:
				f.FailWhen(fail)
			}
			svc := h.cfg.Services[4].Name
			next := edited(h.cfg, svc, func(s *config.Service) *config.Service {
				s.Endpoints = append(s.Endpoints, &config.Endpoint{Address: netip.MustParseAddr("10.120.0.9"), Node: "node2", Ready: true, Serving: true})
				return s
			})
			_, err := h.s.Update(context.Background(), next, []string{svc})
			if err == nil || errors.Is(err, ErrNeedFull) {
				t.Fatalf("an update the kernel refuses: %v", err)
			}
			for _, f := range backend.Families {
				rs, _ := k.Read(f, nil)
				if rs.Text() != before[f] {
					t.Errorf("the %s rules changed after a refused update:\n%s", f, lineDiff(before[f], rs.Text()))
				}
			}
			if _, err := h.s.Update(context.Background(), h.cfg, nil); err == nil {
				t.Errorf("a session that failed takes another update")
			}
		})
	}
}

// TestSessionPending: an apply awaiting confirmation, or another
// generation recorded since the session began, needs a full pass, and
// nothing is changed.
func TestSessionPending(t *testing.T) {
	h := newSessionHost(t, iptables.NewFake(), benchConfig(t, 20, 3))
	d, err := state.Open(h.e.StateDir)
	if err != nil {
		t.Fatal(err)
	}
	st := h.state(t)
	st.Pending = &state.Pending{ID: "p1", Status: state.PendingAwaiting, Prefix: "SVCNAT", Backend: h.e.Kernel.Name()}
	if err := d.Save(st); err != nil {
		t.Fatal(err)
	}
	svc := h.cfg.Services[3].Name
	next := verdict(h.cfg, svc, 0, true)
	if _, err := h.s.Update(context.Background(), next, []string{svc}); !errors.Is(err, ErrNeedFull) {
		t.Fatalf("an update while an apply awaits confirmation: %v; want ErrNeedFull", err)
	}
	h.check(t, "a refused update") // h.cfg is still the old one
	st.Pending = nil
	st.Generation++
	if err := d.Save(st); err != nil {
		t.Fatal(err)
	}
	if _, err := h.s.Update(context.Background(), next, []string{svc}); !errors.Is(err, ErrNeedFull) {
		t.Fatalf("an update after another generation: %v; want ErrNeedFull", err)
	}
}

// TestSessionUDPFlows: a UDP endpoint a verdict takes out has its
// conntrack entries deleted, as a full apply deletes them.
func TestSessionUDPFlows(t *testing.T) {
	for name, kernel := range sessionKernels {
		t.Run(name, func(t *testing.T) {
			cfg := withService(benchConfig(t, 10, 3), newService(7, config.ProtoUDP))
			h := newSessionHost(t, kernel(), cfg)
			full := newSessionHost(t, kernel(), cfg)
			svc := newService(7, config.ProtoUDP).Name
			next := verdict(cfg, svc, 1, true)
			if f, _ := h.update(t, next, []string{svc}); f {
				t.Fatal("a verdict needed a full pass")
			}
			if _, err := full.e.Apply(context.Background(), next, bench.Node); err != nil {
				t.Fatal(err)
			}
			if len(full.cleaner.flows) == 0 || fmt.Sprint(h.cleaner.flows) != fmt.Sprint(full.cleaner.flows) {
				t.Errorf("an update cleaned %v; a full apply %v", h.cleaner.flows, full.cleaner.flows)
			}
		})
	}
}

// TestSessionLargeClusterFlip: an edit that takes iptables across
// kube-proxy's large-cluster threshold (1,000 endpoints in a family)
// changes every service's endpoint rules, and needs a full pass; below it
// the same edit does not.
func TestSessionLargeClusterFlip(t *testing.T) {
	h := newSessionHost(t, iptables.NewFake(), benchConfig(t, 200, 5)) // 1,000 endpoints
	svc := h.cfg.Services[3].Name
	add := func(cfg *config.Config) *config.Config {
		return edited(cfg, svc, func(s *config.Service) *config.Service {
			s.Endpoints = append(s.Endpoints, &config.Endpoint{Address: netip.MustParseAddr("10.120.0.1"), Node: "node2", Ready: true, Serving: true})
			return s
		})
	}
	if full, _ := h.update(t, add(h.cfg), []string{svc}); !full {
		t.Errorf("crossing the large-cluster threshold did not need a full pass")
	}
	h.check(t, "crossing the threshold")
	small := newSessionHost(t, iptables.NewFake(), benchConfig(t, 100, 5))
	if full, _ := small.update(t, add(small.cfg), []string{svc}); full {
		t.Errorf("an endpoint added below the threshold needed a full pass")
	}
	small.check(t, "an endpoint added")
}
