package engine

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"testing"

	"github.com/svcnat/svcnat/internal/bench"
	"github.com/svcnat/svcnat/internal/config"
	"github.com/svcnat/svcnat/internal/kernel/backend"
	"github.com/svcnat/svcnat/internal/testns"
)

// TestSessionKernel runs a session's updates on each real backend, in a
// namespace of the test's own: a verdict down and up, an endpoint added,
// a service added and removed, all endpoints down; after each a full
// plan of the configuration is empty.
func TestSessionKernel(t *testing.T) {
	if why := testns.Available(); why != "" {
		t.Skip(why)
	}
	for _, name := range []backend.Name{"iptables-nft", "iptables-legacy", "nftables"} {
		t.Run(string(name), func(t *testing.T) {
			ns := testns.New(t)
			h, err := OpenHost(HostOptions{NetNS: ns.Name, Backend: name, Prefix: "SVCNAT", RuntimeDir: t.TempDir()})
			if err != nil {
				t.Skipf("opening %s in %s: %v", name, ns.Name, err)
			}
			cfg := withService(benchConfig(t, 40, 3), newService(1, config.ProtoUDP))
			e := &Engine{Host: *h, StateDir: t.TempDir()}
			ctx := context.Background()
			if _, err := e.Apply(ctx, cfg, bench.Node); err != nil {
				t.Fatal(err)
			}
			p, err := e.Plan(cfg, bench.Node)
			if err != nil || !p.Empty() {
				t.Fatalf("the plan after the apply: %v, %v", p.Summary(), err)
			}
			s, err := e.NewSession(p, cfg, bench.Node)
			if err != nil {
				t.Fatal(err)
			}
			web, udp := cfg.Services[5].Name, newService(1, config.ProtoUDP).Name
			added := newService(2, config.ProtoTCP)
			plus := edited(cfg, web, func(s *config.Service) *config.Service {
				s.Endpoints = append(s.Endpoints, &config.Endpoint{Address: netip.MustParseAddr("10.120.0.7"), Node: "node2", Ready: true, Serving: true})
				return s
			})
			steps := []struct {
				what    string
				cfg     *config.Config
				changed string
			}{
				{"a verdict takes an endpoint out", verdict(cfg, web, 1, true), web},
				{"and puts it back", cfg, web},
				{"a UDP endpoint's verdict", verdict(cfg, udp, 0, true), udp},
				{"and back", cfg, udp},
				{"an endpoint added", plus, web},
				{"a service added", withService(plus, added), added.Name},
				{"and removed", plus, added.Name},
				{"every endpoint down", edited(plus, web, func(s *config.Service) *config.Service {
					for _, e := range s.Endpoints {
						e.Ready, e.Serving = false, false
					}
					return s
				}), web},
				{"and up", plus, web},
			}
			for _, st := range steps {
				res, err := s.Update(ctx, st.cfg, []string{st.changed})
				if errors.Is(err, ErrNeedFull) {
					t.Fatalf("%s needed a full pass: %v", st.what, err)
				}
				if err != nil {
					t.Fatalf("%s: %v", st.what, err)
				}
				p, err := e.Plan(st.cfg, bench.Node)
				if err != nil {
					t.Fatal(err)
				}
				if !p.Empty() {
					t.Fatalf("after %s (%d lines written), a full plan has %s", st.what, res.Lines, fmt.Sprint(p.Summary()))
				}
			}
		})
	}
}
