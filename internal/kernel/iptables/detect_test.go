package iptables

import (
	"errors"
	"testing"

	"github.com/svcnat/svcnat/internal/testns"
)

func TestDetect(t *testing.T) {
	const (
		owned4  = "*nat\n:SVCNAT-SERVICES - [0:0]\n-A PREROUTING -j SVCNAT-SERVICES\nCOMMIT\n"
		owned6  = "*nat\n:SVCNAT-SERVICES - [0:0]\nCOMMIT\n"
		docker  = "*filter\n:DOCKER - [0:0]\n-A FORWARD -j DOCKER\nCOMMIT\n"
		onerule = "*filter\n-A INPUT -j ACCEPT\nCOMMIT\n"
	)
	type load struct{ bin, payload string }
	cases := []struct {
		name  string
		loads []load
		want  Backend
		both  bool
	}{
		{"empty namespace defaults to nft", nil, NFT, false},
		{"only legacy holds rules", []load{{"iptables-legacy-restore", docker}}, Legacy, false},
		{"only nft holds rules (IPv6)", []load{{"ip6tables-nft-restore", docker}}, NFT, false},
		{"svcnat chains decide over other rules", []load{
			{"iptables-nft-restore", owned4}, {"iptables-legacy-restore", docker}, {"ip6tables-legacy-restore", docker},
		}, NFT, false},
		{"svcnat chains in legacy IPv6", []load{{"ip6tables-legacy-restore", owned6}, {"iptables-nft-restore", onerule}}, Legacy, false},
		{"rules in both: more wins", []load{{"iptables-nft-restore", onerule}, {"iptables-legacy-restore", docker}}, Legacy, false},
		{"svcnat chains in both", []load{{"iptables-nft-restore", owned4}, {"ip6tables-legacy-restore", owned6}}, NFT, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ns := testns.New(t)
			for _, l := range tc.loads {
				ns.MustExec(t, l.payload, l.bin, "--noflush")
			}
			d, err := Survey(ns.Name, "SVCNAT")
			if tc.both {
				var be *BothBackendsError
				if !errors.Is(err, ErrBothBackends) || !errors.As(err, &be) ||
					len(be.NFT) != 1 || be.NFT[0] != "IPv4 nat SVCNAT-SERVICES" ||
					len(be.Legacy) != 1 || be.Legacy[0] != "IPv6 nat SVCNAT-SERVICES" {
					t.Fatalf("want ErrBothBackends naming both, got %v", err)
				}
				if _, _, err := Open(Options{Backend: Auto, NetNS: ns.Name, ChainPrefix: "SVCNAT"}); !errors.Is(err, ErrBothBackends) {
					t.Errorf("Open(Auto) with chains in both: %v", err)
				}
				t.Logf("%v", err)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d.Backend != tc.want {
				t.Errorf("chose %s (%s), want %s; nft %+v legacy %+v", d.Backend, d.Reason, tc.want, d.NFT, d.Legacy)
			}
			if len(tc.loads) == 0 {
				// Survey must not create legacy tables (no -t mangle).
				for _, bin := range []string{"iptables-legacy-save", "ip6tables-legacy-save"} {
					if out := ns.MustExec(t, "", bin); out != "" {
						t.Errorf("%s after Survey:\n%s", bin, out)
					}
				}
			}
			ipt, got, err := Open(Options{Backend: Auto, NetNS: ns.Name, ChainPrefix: "SVCNAT"})
			if err != nil || ipt.Name() != tc.want || got.Backend != tc.want {
				t.Errorf("Open(Auto) = %v, %+v, %v; want %s", ipt, got, err, tc.want)
			}
			// An explicit backend is refused while svcnat's chains are
			// in the other one.
			other := Legacy
			if tc.want == Legacy {
				other = NFT
			}
			_, _, err = Open(Options{Backend: other, NetNS: ns.Name, ChainPrefix: "SVCNAT"})
			if owned := len(got.NFT.Owned) + len(got.Legacy.Owned); owned > 0 != errors.Is(err, ErrOtherBackend) {
				t.Errorf("Open(%s) with svcnat chains in %s: %v", other, tc.want, err)
			}
		})
	}
}

// The survey never saves the backend holding svcnat's marker chain, but
// saves the other whole: chains svcnat left there without the marker (an
// apply killed while staging) still count as svcnat's.
func TestSurveyFindsStagedLeftoversInTheOtherBackend(t *testing.T) {
	ns := testns.New(t)
	ns.MustExec(t, "*nat\n:SVCNAT-SERVICES - [0:0]\nCOMMIT\n", "iptables-nft-restore", "--noflush")
	ns.MustExec(t, "*nat\n:SVCNAT-SEP-LEFTOVER - [0:0]\nCOMMIT\n", "iptables-legacy-restore", "--noflush")
	_, err := Survey(ns.Name, "SVCNAT")
	var be *BothBackendsError
	if !errors.As(err, &be) || len(be.Legacy) != 1 || be.Legacy[0] != "IPv4 nat SVCNAT-SEP-LEFTOVER" {
		t.Fatalf("want both backends named, the legacy leftover among them; got %v", err)
	}
}
