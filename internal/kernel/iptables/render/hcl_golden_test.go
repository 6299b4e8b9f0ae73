package render

// HCL golden tests: the golden cases of cases_test.go written as HCL
// (testdata/hcl/<case>.hcl), so that the decoder, its defaults and its
// validation are exercised against kube-proxy's expected output, not only
// the renderer fed with hand-built structs. For every case:
//
//   - config.Load accepts the file without any diagnostic;
//   - RenderWritten of the loaded configuration matches the case's
//     testdata/<case>.kube-proxy whole chain by whole chain, as
//     TestWrittenMatchesKubeProxy does for the struct (cases without upstream
//     text are pinned by their canonical goldens through the next check);
//   - Render of the loaded configuration equals Render of the case's struct
//     configuration exactly (the iptables-restore text of every family and
//     the chain-to-service index), so the two paths cannot drift apart.
//
// Where the upstream objects are not valid as written, the HCL states what
// kube-proxy acts on and renders the same rules (each file's header says
// so): overall.hcl and extra_masquerade_all.hcl write ns4/svc4, a NodePort
// service without a node port, as a ClusterIP service with its external
// IP, and leave out ns5/svc5's health check node port, which kube-proxy
// ignores under external traffic policy Cluster; the terminating_cluster_*
// files leave out the health check node port for the same reason.
//
// Variants (hclVariants): four cases have objects config legitimately
// refuses and which no rewrite can express with the same output text, so
// their struct-based tests stay as they are and an HCL variant with a valid
// input is tested instead, against its own struct configuration:
//
//   - localhost_nodeports_ipv6_{enabled,disabled}: upstream's endpoints
//     ff06::c1 and ff06::c2 are multicast addresses, which config refuses
//     for endpoints. The variants use fd00:10::c1 and fd00:10::c2; their
//     expected text, testdata/<case>_unicast.kube-proxy, is upstream's with
//     the addresses replaced and the two KUBE-SEP- hashes recomputed, which
//     TestHCLVariantExpectedDerived redoes from the upstream file.
//   - terminating_{local,cluster}_no_usable: upstream lists endpoint
//     10.0.1.5 twice (on two nodes); config refuses a duplicate endpoint
//     address. The variants give the second one 10.0.1.6. Neither endpoint
//     is usable, so no endpoint chain is written and upstream's text is the
//     expected output unchanged.
//
// Every golden case is covered: hclNotExpressible, the list of cases the
// HCL cannot state at all, is empty, and TestHCLCoverage keeps it honest.

import (
	"bytes"
	"crypto/sha256"
	"encoding/base32"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/svcnat/svcnat/internal/config"
	"github.com/svcnat/svcnat/internal/kernel/iptables/rules"
)

// hclVariant replaces a golden case whose objects config refuses.
type hclVariant struct {
	// file is the variant's name: testdata/hcl/<file>.hcl, and when addrs
	// is set testdata/<file>.kube-proxy.
	file string
	// cfg is the struct configuration equivalent to the variant's HCL.
	cfg *config.Config
	// addrs maps each upstream endpoint address to the one the variant
	// uses. When set, the expected text is derived from the case's upstream
	// text; when nil, upstream's text is the expected output unchanged.
	addrs map[string]string
	// spn and port are the service port name and target port the
	// replaced endpoints' KUBE-SEP- hashes are computed from.
	spn  string
	port int
}

func hclVariants() map[string]hclVariant {
	v6 := func(on bool) *config.Config {
		return cfg(kubeSettings(noClusterCIDR, localhostNodePorts(on)), localNodePortService("fd00:ab34::20", "fd00:10::c1", "fd00:10::c2"))
	}
	unicast := map[string]string{"ff06::c1": "fd00:10::c1", "ff06::c2": "fd00:10::c2"}
	noUsable := func(policy string) *config.Config {
		return cfg(kubeSettings(), terminatingService(policy, []*config.Endpoint{
			epCond("10.0.1.5", testNodeName, false, false, true),
			epCond("10.0.1.6", "host-1", false, false, true),
		}))
	}
	return map[string]hclVariant{
		"localhost_nodeports_ipv6_enabled":  {file: "localhost_nodeports_ipv6_enabled_unicast", cfg: v6(true), addrs: unicast, spn: "ns1/svc1:p80", port: 80},
		"localhost_nodeports_ipv6_disabled": {file: "localhost_nodeports_ipv6_disabled_unicast", cfg: v6(false), addrs: unicast, spn: "ns1/svc1:p80", port: 80},
		"terminating_local_no_usable":       {file: "terminating_local_no_usable_distinct", cfg: noUsable(config.PolicyLocal)},
		"terminating_cluster_no_usable":     {file: "terminating_cluster_no_usable_distinct", cfg: noUsable(config.PolicyCluster)},
	}
}

// hclNotExpressible names the golden cases the HCL cannot express at all,
// with the reason. There are none.
var hclNotExpressible = map[string]string{}

// hclCase is a golden case as HCL.
type hclCase struct {
	goldenCase        // cfg is the equivalent struct configuration
	file       string // testdata/hcl/<file>.hcl
	expected   string // testdata/<expected>.kube-proxy; "" when fam is 0
}

func hclCases() []hclCase {
	variants := hclVariants()
	var out []hclCase
	for _, tc := range goldenCases() {
		if _, skip := hclNotExpressible[tc.name]; skip {
			continue
		}
		hc := hclCase{goldenCase: tc, file: tc.name, expected: tc.name}
		if v, ok := variants[tc.name]; ok {
			hc.file, hc.cfg = v.file, v.cfg
			if v.addrs != nil {
				hc.expected = v.file
			}
		}
		if tc.fam == 0 {
			hc.expected = ""
		}
		out = append(out, hc)
	}
	return out
}

func hclPath(file string) string { return filepath.Join("testdata", "hcl", file+".hcl") }

// loadHCL loads a case's HCL and requires it to load without a single
// diagnostic, and to name the node the case renders for.
func loadHCL(t *testing.T, hc hclCase) *config.Config {
	t.Helper()
	c, diags := config.Load(hclPath(hc.file))
	if len(diags) > 0 {
		var buf bytes.Buffer
		if err := config.WriteDiagnostics(&buf, c.Files, diags, false, 100); err != nil {
			t.Fatal(err)
		}
		t.Fatalf("config.Load(%s):\n%s", hclPath(hc.file), buf.String())
	}
	if c.Settings.Node != hc.opts.Node {
		t.Fatalf("%s: settings node is %q, the case renders for %q", hclPath(hc.file), c.Settings.Node, hc.opts.Node)
	}
	return c
}

// TestHCLCoverage requires every golden case to have its HCL file (or a
// variant's, or a reason in hclNotExpressible) and every HCL file to
// belong to a case.
func TestHCLCoverage(t *testing.T) {
	names := map[string]bool{}
	for _, tc := range goldenCases() {
		names[tc.name] = true
	}
	for name := range hclNotExpressible {
		if !names[name] {
			t.Errorf("hclNotExpressible names %q, which is no golden case", name)
		}
	}
	for name := range hclVariants() {
		if !names[name] {
			t.Errorf("hclVariants names %q, which is no golden case", name)
		}
	}
	used := map[string]bool{}
	for _, hc := range hclCases() {
		used[hclPath(hc.file)] = true
		if _, err := os.Stat(hclPath(hc.file)); err != nil {
			t.Errorf("golden case %s: %v (write it, or list the case in hclNotExpressible with the reason)", hc.name, err)
		}
	}
	files, err := filepath.Glob(filepath.Join("testdata", "hcl", "*"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if !used[f] {
			t.Errorf("%s belongs to no golden case", f)
		}
	}
}

// TestHCLMatchesKubeProxy is TestWrittenMatchesKubeProxy with the
// configuration read from HCL.
func TestHCLMatchesKubeProxy(t *testing.T) {
	for _, hc := range hclCases() {
		if hc.expected == "" {
			continue
		}
		t.Run(hc.name, func(t *testing.T) {
			c := loadHCL(t, hc)
			want := parseFile(t, hc.fam, filepath.Join("testdata", hc.expected+".kube-proxy"))
			res, err := RenderWritten(c, hc.opts)
			if err != nil {
				t.Fatal(err)
			}
			got := res.Rulesets[hc.fam]
			if got == nil {
				t.Fatalf("no %s ruleset rendered", hc.fam)
			}
			compareChains(t, want, got, func(s string) string { return strings.ReplaceAll(s, writtenMark, upstreamMark) })
		})
	}
}

// TestHCLRendersLikeStructs requires the HCL of every case to render
// exactly what the case's struct configuration renders: the same families,
// the same canonical restore text, the same chain-to-service index.
func TestHCLRendersLikeStructs(t *testing.T) {
	for _, hc := range hclCases() {
		t.Run(hc.name, func(t *testing.T) {
			fromHCL, err := Render(loadHCL(t, hc), hc.opts)
			if err != nil {
				t.Fatal(err)
			}
			fromStruct, err := Render(hc.cfg, hc.opts)
			if err != nil {
				t.Fatal(err)
			}
			a, b := slices.Sorted(maps.Keys(fromStruct.Rulesets)), slices.Sorted(maps.Keys(fromHCL.Rulesets))
			if !slices.Equal(a, b) {
				t.Fatalf("families: struct %v, HCL %v", a, b)
			}
			for _, fam := range a {
				var ws, gs bytes.Buffer
				if err := rules.WriteRestore(fromStruct.Rulesets[fam], &ws); err != nil {
					t.Fatal(err)
				}
				if err := rules.WriteRestore(fromHCL.Rulesets[fam], &gs); err != nil {
					t.Fatal(err)
				}
				if ws.String() != gs.String() {
					t.Errorf("%s: HCL renders differently from the struct configuration:\nstruct:\n%s\nHCL:\n%s", fam, ws.String(), gs.String())
				}
			}
			if !maps.Equal(fromStruct.ChainService, fromHCL.ChainService) {
				t.Errorf("chain index: struct %v, HCL %v", fromStruct.ChainService, fromHCL.ChainService)
			}
		})
	}
}

// TestHCLVariantExpectedDerived redoes the derivation of each variant's
// expected text from upstream's: every upstream endpoint address replaced,
// and the KUBE-SEP- chain of each replaced endpoint renamed to the hash
// kube-proxy's servicePortEndpointChainName gives the new one, computed
// here independently of the renderer. Header comments aside, the result
// must be the variant's file byte for byte.
func TestHCLVariantExpectedDerived(t *testing.T) {
	sepHash := func(spn, proto, addr string, port int) string {
		sum := sha256.Sum256([]byte(spn + proto + netip.AddrPortFrom(netip.MustParseAddr(addr), uint16(port)).String()))
		return "KUBE-SEP-" + base32.StdEncoding.EncodeToString(sum[:])[:16]
	}
	body := func(path string) string {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var keep []string
		for _, l := range strings.SplitAfter(string(data), "\n") {
			if !strings.HasPrefix(l, "#") {
				keep = append(keep, l)
			}
		}
		return strings.Join(keep, "")
	}
	variants := hclVariants()
	for _, name := range slices.Sorted(maps.Keys(variants)) {
		v := variants[name]
		if v.addrs == nil {
			continue
		}
		t.Run(name, func(t *testing.T) {
			text := body(filepath.Join("testdata", name+".kube-proxy"))
			for _, old := range slices.Sorted(maps.Keys(v.addrs)) {
				oldSEP, newSEP := sepHash(v.spn, "tcp", old, v.port), sepHash(v.spn, "tcp", v.addrs[old], v.port)
				if !strings.Contains(text, oldSEP) {
					t.Fatalf("upstream text has no %s for %s", oldSEP, old)
				}
				text = strings.ReplaceAll(text, oldSEP, newSEP)
				text = strings.ReplaceAll(text, old, v.addrs[old])
			}
			if got := body(filepath.Join("testdata", v.file+".kube-proxy")); got != text {
				t.Errorf("testdata/%s.kube-proxy is not upstream's text with the addresses replaced:\nwant:\n%s\ngot:\n%s", v.file, text, got)
			}
		})
	}
}

// TestHCLTestdataFormatted keeps the HCL in svcnat fmt's canonical form.
func TestHCLTestdataFormatted(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "hcl", "*.hcl"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		res, diags := config.FormatFile(f, src)
		if diags.HasErrors() || res.Changed {
			t.Errorf("%s is not formatted (%v):\n%s", f, diags, res.Formatted)
		}
	}
}
