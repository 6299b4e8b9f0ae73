package render

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/svcnat/svcnat/internal/kernel/backend"
	"github.com/svcnat/svcnat/internal/kernel/iptables/rules"
)

var update = flag.Bool("update", false, "rewrite the canonical goldens in testdata")

// upstreamMark is the mark kube-proxy's unit tests expect. Real kube-proxy
// writes fmt.Sprintf("%#08x", 1<<14), "0x00004000", and so does
// RenderWritten; NewFakeProxier hard-codes masqueradeMark "0x4000"
// instead. The kernel stores the same value either way.
const (
	writtenMark  = "0x00004000"
	upstreamMark = "0x4000"
)

func parseFile(t *testing.T, fam backend.Family, path string) *backend.Ruleset {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	rs, err := rules.ParseSave(fam, bytes.NewReader(data))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return rs
}

// TestWrittenMatchesKubeProxy compares RenderWritten with kube-proxy's own
// expected output, whole chains at a time: the same chains (built-in chains
// aside, which upstream's payloads never hold) and in each the same rules in
// the same order, token for token.
func TestWrittenMatchesKubeProxy(t *testing.T) {
	for _, tc := range goldenCases() {
		if tc.fam == 0 {
			continue
		}
		t.Run(tc.name, func(t *testing.T) {
			want := parseFile(t, tc.fam, filepath.Join("testdata", tc.name+".kube-proxy"))
			res, err := RenderWritten(tc.cfg, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			got := res.Rulesets[tc.fam]
			if got == nil {
				t.Fatalf("no %s ruleset rendered", tc.fam)
			}
			compareChains(t, want, got, func(s string) string { return strings.ReplaceAll(s, writtenMark, upstreamMark) })
		})
	}
}

// compareChains reports every difference between the user chains of want
// and got, table by table; norm is applied to got's arguments.
func compareChains(t *testing.T, want, got *backend.Ruleset, norm func(string) string) {
	t.Helper()
	if a, b := tableNames(want), tableNames(got); !slices.Equal(a, b) {
		t.Errorf("tables: want %v, got %v", a, b)
	}
	for _, wt := range want.Tables {
		gt := got.Table(wt.Name)
		if gt == nil {
			continue
		}
		if a, b := chainNames(wt), chainNames(gt); !slices.Equal(a, b) {
			t.Errorf("%s chains:\nwant %v\n got %v", wt.Name, a, b)
		}
		for _, wc := range wt.Chains {
			gc := gt.Chain(wc.Name)
			if gc == nil {
				continue
			}
			var w, g []string
			for _, r := range wc.Rules {
				w = append(w, r.String())
			}
			for _, r := range gc.Rules {
				args := make([]string, len(r.Args))
				for i, x := range r.Args {
					args[i] = norm(x)
				}
				g = append(g, backend.Rule{Chain: r.Chain, Args: args}.String())
			}
			if !slices.Equal(w, g) {
				t.Errorf("%s %s:\nwant:\n  %s\n got:\n  %s", wt.Name, wc.Name, strings.Join(w, "\n  "), strings.Join(g, "\n  "))
			}
		}
	}
}

func tableNames(rs *backend.Ruleset) []string {
	var out []string
	for _, t := range rs.Tables {
		out = append(out, t.Name)
	}
	return out
}

// chainNames returns the sorted user chains of t.
func chainNames(t *backend.Table) []string {
	var out []string
	for _, c := range t.Chains {
		if !c.Builtin() {
			out = append(out, c.Name)
		}
	}
	slices.Sort(out)
	return out
}

func goldenPath(name string, fam backend.Family) string {
	return filepath.Join("testdata", name+map[backend.Family]string{backend.IPv4: ".v4", backend.IPv6: ".v6"}[fam]+".golden")
}

// TestCanonicalGolden compares Render's output, as an iptables-restore
// payload, with testdata/<case>.v4.golden and .v6.golden (go test -update
// rewrites them). A golden read back and canonicalized again must not
// change: canonical output is a fixed point.
func TestCanonicalGolden(t *testing.T) {
	for _, tc := range goldenCases() {
		t.Run(tc.name, func(t *testing.T) {
			res, err := Render(tc.cfg, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			for _, fam := range []backend.Family{backend.IPv4, backend.IPv6} {
				path := goldenPath(tc.name, fam)
				rs := res.Rulesets[fam]
				if rs == nil {
					if _, err := os.Stat(path); err == nil {
						t.Errorf("%s exists but no %s ruleset was rendered", path, fam)
					}
					continue
				}
				var buf bytes.Buffer
				if err := rules.WriteRestore(rs, &buf); err != nil {
					t.Fatal(err)
				}
				if *update {
					if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
						t.Fatal(err)
					}
				}
				want, err := os.ReadFile(path)
				if err != nil {
					t.Fatalf("%v (run go test ./render -update to create it)", err)
				}
				if buf.String() != string(want) {
					t.Errorf("%s differs from Render output (go test ./render -update rewrites it):\n%s", path, buf.String())
				}
				// Read back and canonicalized again, the golden must not
				// change. (Compared chain by chain: a restore payload does
				// not declare built-in chains, so parsing it reorders them.)
				again := parseFile(t, fam, path)
				for _, tbl := range rs.Tables {
					for _, c := range tbl.Chains {
						var w, g []string
						for _, r := range c.Rules {
							w = append(w, r.String())
						}
						if ac := again.Table(tbl.Name).Chain(c.Name); ac != nil {
							for _, r := range ac.Rules {
								cr, err := rules.CanonicalRule(fam, r)
								if err != nil {
									t.Fatal(err)
								}
								g = append(g, cr.String())
							}
						}
						if !slices.Equal(w, g) {
							t.Errorf("%s %s %s is not a fixed point of Canonicalize:\n%s", path, tbl.Name, c.Name, strings.Join(g, "\n"))
						}
					}
				}
			}
		})
	}
}
