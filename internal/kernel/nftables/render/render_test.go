package render

import (
	"bytes"
	"context"
	"flag"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"sigs.k8s.io/knftables"

	"github.com/svcnat/svcnat/internal/config"
	"github.com/svcnat/svcnat/internal/kernel/backend"
	"github.com/svcnat/svcnat/internal/service"
)

var update = flag.Bool("update", false, "rewrite the goldens in testdata")

// testNode stands for kube-proxy's testNodeName.
const testNode = "test-node"

// upstreamOptions are NewFakeProxier's facts about its node: 127.0.0.1
// and ::1 on lo, the test node IPs on eth0, service CIDR 172.30.0.0/16
// (fd00:10:96::/112 for IPv6).
func upstreamOptions() Options {
	return Options{
		RenderOptions: backend.RenderOptions{
			Node: testNode,
			LocalAddresses: addrs("127.0.0.1", "::1", "192.168.0.2", "192.168.1.2", "192.168.99.11",
				"2001:db8::1", "2001:db8:1::2"),
		},
		ServiceCIDRs: []netip.Prefix{netip.MustParsePrefix("172.30.0.0/16"), netip.MustParsePrefix("fd00:10:96::/112")},
	}
}

func addrs(s ...string) []netip.Addr {
	var out []netip.Addr
	for _, x := range s {
		out = append(out, netip.MustParseAddr(x))
	}
	return out
}

// goldenCase is a configuration (testdata/hcl/<name>.hcl) rendered with
// opts, whose every family's dump is testdata/<name>.<v4|v6>.nft.
type goldenCase struct {
	name string
	opts Options
}

func goldenCases() []goldenCase {
	return []goldenCase{
		{"overall", upstreamOptions()},
		{"traffic_policies", upstreamOptions()},
		{"masquerade_all", upstreamOptions()},
		{"dual_stack", upstreamOptions()},
		{"long_names", upstreamOptions()},
		{"source_ranges", upstreamOptions()},
	}
}

// loadHCL loads testdata/hcl/<name>.hcl, which must load without a single
// diagnostic.
func loadHCL(t *testing.T, name string) *config.Config {
	t.Helper()
	path := filepath.Join("testdata", "hcl", name+".hcl")
	c, diags := config.Load(path)
	if len(diags) > 0 {
		var buf bytes.Buffer
		if err := config.WriteDiagnostics(&buf, c.Files, diags, false, 100); err != nil {
			t.Fatal(err)
		}
		t.Fatalf("config.Load(%s):\n%s", path, buf.String())
	}
	return c
}

// dump renders one family of cfg into a fresh knftables Fake, runs the
// transaction (which the Fake refuses if an object is invalid or refers to
// one missing) and returns the Fake's dump.
func dump(t *testing.T, cfg *config.Config, fam backend.Family, opts Options) string {
	t.Helper()
	table := opts.Table
	if table == "" {
		table = DefaultTable
	}
	fake := knftables.NewFake(nftFamily(fam), table)
	tx := fake.NewTransaction()
	if _, err := RenderConfig(tx, cfg, fam, opts); err != nil {
		t.Fatal(err)
	}
	if err := fake.Run(context.Background(), tx); err != nil {
		t.Fatalf("running the %s transaction: %v\n%s", fam, err, tx.String())
	}
	return fake.Dump()
}

func goldenPath(name string, fam backend.Family) string {
	suffix := ".v4.nft"
	if fam == backend.IPv6 {
		suffix = ".v6.nft"
	}
	return filepath.Join("testdata", name+suffix)
}

// TestGolden compares the Fake's dump of every family a case renders with
// testdata/<case>.v4.nft and .v6.nft (go test -update rewrites them). A
// golden loaded into a Fake with ParseDump and dumped again must not
// change: the dump is a fixed point.
func TestGolden(t *testing.T) {
	for _, tc := range goldenCases() {
		t.Run(tc.name, func(t *testing.T) {
			cfg := loadHCL(t, tc.name)
			m := service.Build(cfg, service.Options{Node: tc.opts.Node, LocalAddresses: tc.opts.LocalAddresses})
			fams := Families(m)
			for _, fam := range backend.Families {
				path := goldenPath(tc.name, fam)
				if !slices.Contains(fams, fam) {
					if _, err := os.Stat(path); err == nil {
						t.Errorf("%s exists but no %s table is rendered", path, fam)
					}
					continue
				}
				got := dump(t, cfg, fam, tc.opts)
				if *update {
					if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
						t.Fatal(err)
					}
				}
				want, err := os.ReadFile(path)
				if err != nil {
					t.Fatalf("%v (go test -update creates it)", err)
				}
				if got != string(want) {
					t.Errorf("%s differs from the rendered dump (go test -update rewrites it):\n%s", path, got)
				}
				again := knftables.NewFake(nftFamily(fam), DefaultTable)
				if err := again.ParseDump(string(want)); err != nil {
					t.Fatalf("%s: ParseDump: %v", path, err)
				}
				if d := again.Dump(); d != string(want) {
					t.Errorf("%s is not a fixed point of ParseDump and Dump:\n%s", path, d)
				}
			}
		})
	}
}

// TestOverallMatchesKubeProxy renders TestOverallNFTablesRules' services
// and compares the dump with what kube-proxy's generation-B proxier writes
// for them (testdata/overall.kube-proxy, whose header says how it was
// derived), sorted as kube-proxy's own tests compare. Adapted, and only
// this: kube-proxy's table "kube-proxy" is svcnat's "svcnat" (every "ip
// kube-proxy " becomes "ip svcnat ", and the table comment "rules for
// kube-proxy" becomes "rules for svcnat"), and kube-proxy's tests write the
// masquerade mark "0x4000" where it (and svcnat) write "0x00004000" at run
// time, so svcnat's mark is turned into the tests' spelling.
//
// The lines that differ are exactly those of the endpoint selection,
// which svcnat writes in its own shape (the package doc's "shared
// endpoints map"): kube-proxy's lines matching kubeProxyOnly, svcnat's
// matching svcnatOnly, and nothing else; and each service chain DNATs to
// the same endpoints in the same order either way. A chainless port
// (the package doc's dispatch chains) is read back first into the chain
// kube-proxy writes for it (withChains): its service-ips element then
// goes to that chain, whose endpoints are its vip-endpoints elements.
func TestOverallMatchesKubeProxy(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "overall.kube-proxy"))
	if err != nil {
		t.Fatal(err)
	}
	want := strings.NewReplacer("ip kube-proxy ", "ip svcnat ", `"rules for kube-proxy"`, `"rules for svcnat"`).Replace(string(data))
	got := dump(t, loadHCL(t, "overall"), backend.IPv4, upstreamOptions())
	got = strings.ReplaceAll(got, "0x00004000", "0x4000")
	compareWithKubeProxy(t, "", sortDump(want), sortDump(got))

	// With kube-proxy's own table name, nothing but the mark is adapted.
	opts := upstreamOptions()
	opts.Table = "kube-proxy"
	got = strings.ReplaceAll(dump(t, loadHCL(t, "overall"), backend.IPv4, opts), "0x00004000", "0x4000")
	compareWithKubeProxy(t, "with table kube-proxy: ", sortDump(string(data)), sortDump(got))
}

// The lines of the endpoint selection, kube-proxy's and svcnat's: the
// only lines TestOverallMatchesKubeProxy lets differ.
var (
	kubeProxyOnly = []*regexp.Regexp{
		// an endpoint chain per endpoint under affinity, and its set
		regexp.MustCompile(`^add chain ip \S+ endpoint-`),
		regexp.MustCompile(`^add rule ip \S+ endpoint-`),
		regexp.MustCompile(`^add set ip \S+ affinity-`),
		// a service chain's anonymous map, affinity lookups and vmap
		regexp.MustCompile(`^add rule ip \S+ (service|local)-\S+ (meta l4proto \w+ dnat ip addr \. port to numgen random mod [0-9]+ map \{ |ip saddr @affinity-\S+ goto endpoint-|numgen random mod [0-9]+ vmap \{ )`),
	}
	svcnatOnly = []*regexp.Regexp{
		regexp.MustCompile(`^add map ip \S+ endpoints-(tcp|udp|sctp)-[0-9]+ \{ typeof `),
		regexp.MustCompile(`^add set ip \S+ affinity \{ typeof `),
		regexp.MustCompile(`^add element ip \S+ endpoints-(tcp|udp|sctp)-[0-9]+ \{ [0-9]+ : `),
		regexp.MustCompile(`^add rule ip \S+ (service|local)-\S+ (meta l4proto \w+ dnat ip addr \. port to numgen random mod [0-9]+ offset [0-9]+ map @endpoints-\w+-[0-9]+|.*update @affinity \{ )`),
		regexp.MustCompile(`^add map ip \S+ vip-endpoints-(tcp|udp|sctp) \{ typeof `),
	}
)

var (
	dispatchElement = regexp.MustCompile(`^add element ip (\S+) service-ips \{ (\S+ \. (\w+) \. [0-9]+) comment "([^"]+)" : goto dispatch-\w+-[0-9]+ \}$`)
	vipElement      = regexp.MustCompile(`^add element ip \S+ vip-endpoints-\w+ \{ (\S+) \. ([0-9]+) \. ([0-9]+) : (\S+) \. ([0-9]+) \}$`)
	dispatchLine    = regexp.MustCompile(`^add (chain|rule) ip \S+ dispatch-`)
)

// withChains reads a chainless port of svcnat's sorted dump back into
// kube-proxy's shape: its service-ips element goes to the service chain
// kube-proxy names (from the element's comment, the service port's name),
// which is declared; the dispatch chains and vip-endpoints elements go.
// It returns the dump and the endpoints of each chain it declared, in
// index order.
func withChains(lines []string) ([]string, map[string][]string) {
	eps := map[string]map[int]string{} // "ip . port" → index → "ip:port"
	for _, l := range lines {
		if m := vipElement.FindStringSubmatch(l); m != nil {
			i, _ := strconv.Atoi(m[3])
			k := m[1] + " . " + m[2]
			if eps[k] == nil {
				eps[k] = map[int]string{}
			}
			eps[k][i] = m[4] + ":" + m[5]
		}
	}
	var out []string
	chains := map[string][]string{}
	for _, l := range lines {
		if dispatchLine.MatchString(l) || vipElement.MatchString(l) {
			continue
		}
		m := dispatchElement.FindStringSubmatch(l)
		if m == nil {
			out = append(out, l)
			continue
		}
		svc, port, _ := strings.Cut(m[4], ":")
		chain := servicePrefix + portNameBase(svc, m[3], port)
		out = append(out, "add chain ip "+m[1]+" "+chain, "add element ip "+m[1]+" service-ips { "+m[2]+" : goto "+chain+" }")
		key := strings.Fields(m[2])
		byIndex := eps[key[0]+" . "+key[4]]
		for i := range len(byIndex) {
			chains[chain] = append(chains[chain], byIndex[i])
		}
	}
	return sortDump(strings.Join(out, "\n")), chains
}

// compareWithKubeProxy requires want (kube-proxy's sorted dump) and got
// (svcnat's) to differ only in lines of the endpoint selection, and each
// service chain to DNAT to the same endpoints.
func compareWithKubeProxy(t *testing.T, what string, want, got []string) {
	t.Helper()
	matches := func(l string, res []*regexp.Regexp) bool {
		return slices.ContainsFunc(res, func(re *regexp.Regexp) bool { return re.MatchString(l) })
	}
	got, chainless := withChains(got)
	var w, g []string
	for _, l := range want {
		if !matches(l, kubeProxyOnly) {
			w = append(w, l)
		}
	}
	for _, l := range got {
		if !matches(l, svcnatOnly) {
			g = append(g, l)
		}
	}
	if !slices.Equal(w, g) {
		t.Errorf("%sthe dump differs from kube-proxy's beyond the endpoint selection:\n%s", what, lineDiff(w, g))
	}
	if len(chainless) == 0 {
		t.Errorf("%sno chainless port: the dispatch shape is not compared", what)
	}
	eps := svcnatEndpoints(got)
	maps.Copy(eps, chainless)
	if w, g := kubeProxyEndpoints(want), eps; !maps.EqualFunc(w, g, slices.Equal) || len(w) == 0 {
		t.Errorf("%sthe service chains DNAT to other endpoints than kube-proxy's:\nkube-proxy %v\nsvcnat     %v", what, w, g)
	}
}

var (
	ruleLine    = regexp.MustCompile(`^add rule ip \S+ (\S+) (.*)$`)
	anonMapDNAT = regexp.MustCompile(`dnat ip addr \. port to numgen random mod [0-9]+ map \{ (.*) \}$`)
	vmapGoto    = regexp.MustCompile(`numgen random mod [0-9]+ vmap \{ (.*) \}$`)
	dnatTo      = regexp.MustCompile(`dnat to (\S+)$`)
	rangeDNAT   = regexp.MustCompile(`numgen random mod ([0-9]+) offset ([0-9]+) map @endpoints-\w+-[0-9]+$`)
	endpointsEl = regexp.MustCompile(`^add element ip \S+ endpoints-\w+-[0-9]+ \{ ([0-9]+) : (\S+) \. ([0-9]+) \}$`)
)

// kubeProxyEndpoints are the endpoints ("ip:port") of each service or
// local chain of a kube-proxy dump, in numgen order: its anonymous map's,
// or its vmap's endpoint chains' DNATs.
func kubeProxyEndpoints(lines []string) map[string][]string {
	rules := map[string][]string{}
	for _, l := range lines {
		if m := ruleLine.FindStringSubmatch(l); m != nil {
			rules[m[1]] = append(rules[m[1]], m[2])
		}
	}
	out := map[string][]string{}
	for chain, rs := range rules {
		for _, r := range rs {
			if m := anonMapDNAT.FindStringSubmatch(r); m != nil {
				for _, e := range strings.Split(m[1], " , ") {
					_, v, _ := strings.Cut(e, " : ")
					out[chain] = append(out[chain], strings.Replace(v, " . ", ":", 1))
				}
			}
			if m := vmapGoto.FindStringSubmatch(r); m != nil {
				for _, e := range strings.Split(m[1], " , ") {
					_, v, _ := strings.Cut(e, " : goto ")
					for _, er := range rules[v] {
						if d := dnatTo.FindStringSubmatch(er); d != nil {
							out[chain] = append(out[chain], d[1])
						}
					}
				}
			}
		}
	}
	return out
}

// svcnatEndpoints are the endpoints of each service or local chain of
// svcnat's dump: the elements of its range of the endpoints map, which
// its affinity rules must DNAT to as well, in the same order.
func svcnatEndpoints(lines []string) map[string][]string {
	elems := map[uint64]string{}
	for _, l := range lines {
		if m := endpointsEl.FindStringSubmatch(l); m != nil {
			k, _ := strconv.ParseUint(m[1], 10, 32)
			elems[k] = m[2] + ":" + m[3]
		}
	}
	out := map[string][]string{}
	picked := map[string][]string{}
	for _, l := range lines {
		m := ruleLine.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		if r := rangeDNAT.FindStringSubmatch(m[2]); r != nil {
			n, _ := strconv.ParseUint(r[1], 10, 32)
			base, _ := strconv.ParseUint(r[2], 10, 32)
			for i := range n {
				out[m[1]] = append(out[m[1]], elems[base+i])
			}
		} else if d := dnatTo.FindStringSubmatch(m[2]); d != nil && !strings.Contains(m[2], " @affinity update ") {
			picked[m[1]] = append(picked[m[1]], d[1])
		}
	}
	for chain, eps := range picked {
		if !slices.Equal(eps, out[chain]) {
			out[chain] = append(out[chain], "(affinity picks "+strings.Join(eps, " ")+")")
		}
	}
	return out
}

// sortDump is kube-proxy's sortNFTablesTransaction: blank and comment
// lines dropped; tables, then chains, rules, sets, maps and elements; each
// kind by object name; rules keep their order within a chain, elements
// sort by line.
func sortDump(s string) []string {
	var lines []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			lines = append(lines, l)
		}
	}
	rank := map[string]int{"table": 0, "chain": 1, "rule": 2, "set": 3, "map": 4, "element": 5}
	sort.SliceStable(lines, func(i, j int) bool {
		wi, wj := strings.Fields(lines[i]), strings.Fields(lines[j])
		if rank[wi[1]] != rank[wj[1]] {
			return rank[wi[1]] < rank[wj[1]]
		}
		if len(wi) > 4 && len(wj) > 4 && wi[4] != wj[4] {
			return wi[4] < wj[4]
		}
		if wi[1] == "element" {
			return lines[i] < lines[j]
		}
		return false
	})
	return lines
}

// lineDiff lists the lines only in want (-) and only in got (+).
func lineDiff(want, got []string) string {
	in := func(l string, s []string) bool { return slices.Contains(s, l) }
	var b strings.Builder
	for _, l := range want {
		if !in(l, got) {
			b.WriteString("- " + l + "\n")
		}
	}
	for _, l := range got {
		if !in(l, want) {
			b.WriteString("+ " + l + "\n")
		}
	}
	if b.Len() == 0 {
		b.WriteString("(the same lines in another order)\n")
	}
	return b.String()
}

// TestDeterministic renders every case twice, the second time from a
// configuration whose services, ports and endpoints are in reverse order:
// the transactions must be the same text.
func TestDeterministic(t *testing.T) {
	for _, tc := range goldenCases() {
		t.Run(tc.name, func(t *testing.T) {
			cfg := loadHCL(t, tc.name)
			rev := *cfg
			rev.Services = nil
			for i := len(cfg.Services) - 1; i >= 0; i-- {
				s := *cfg.Services[i]
				s.Ports = slices.Clone(s.Ports)
				slices.Reverse(s.Ports)
				s.Endpoints = slices.Clone(s.Endpoints)
				slices.Reverse(s.Endpoints)
				rev.Services = append(rev.Services, &s)
			}
			for _, fam := range backend.Families {
				a, b := transaction(t, cfg, fam, tc.opts), transaction(t, &rev, fam, tc.opts)
				if a != b {
					t.Errorf("%s: rendering the same configuration twice differs:\n%s\n---\n%s", fam, a, b)
				}
			}
		})
	}
}

// transaction returns the text of the transaction rendering one family.
func transaction(t *testing.T, cfg *config.Config, fam backend.Family, opts Options) string {
	t.Helper()
	tx := knftables.NewFake(nftFamily(fam), DefaultTable).NewTransaction()
	if _, err := RenderConfig(tx, cfg, fam, opts); err != nil {
		t.Fatal(err)
	}
	return tx.String()
}

// TestFamilies checks which tables a configuration has and that each holds
// its family's addresses only: IPv4 always, ip6 svcnat only with an IPv6
// cluster IP, and an IPv6-only configuration still has the IPv4 table's
// fixed objects, without a service.
func TestFamilies(t *testing.T) {
	v6only, diags := config.Parse(map[string][]byte{"v6.hcl": []byte(`
service "ns/v6" {
  cluster_ips = ["fd00:10:96::1"]

  port {
    port = 80
  }

  endpoint {
    address = "fd00:10::1"
  }
}
`)})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	for _, c := range []struct {
		name string
		cfg  *config.Config
		want []backend.Family
	}{
		{"overall", loadHCL(t, "overall"), []backend.Family{backend.IPv4}},
		{"dual_stack", loadHCL(t, "dual_stack"), []backend.Family{backend.IPv4, backend.IPv6}},
		{"ipv6_only", v6only, []backend.Family{backend.IPv4, backend.IPv6}},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := service.Build(c.cfg, service.Options{Node: testNode})
			if got := Families(m); !slices.Equal(got, c.want) {
				t.Fatalf("families: want %v, got %v", c.want, got)
			}
			for _, fam := range c.want {
				d := dump(t, c.cfg, fam, Options{})
				ref := map[backend.Family]string{backend.IPv4: " ip svcnat ", backend.IPv6: " ip6 svcnat "}[fam]
				if !strings.HasPrefix(d, "add table"+ref) {
					t.Errorf("%s dump does not start with the table%s:\n%s", fam, ref, d)
				}
				for _, l := range strings.Split(strings.TrimSpace(d), "\n") {
					if !strings.Contains(l, ref) {
						t.Errorf("%s: %q is not in the table%s", fam, l, ref)
					}
				}
				other := map[backend.Family]string{backend.IPv4: "fd00:", backend.IPv6: "172.30."}[fam]
				if strings.Contains(d, other) {
					t.Errorf("the %s table holds an address of the other family (%s):\n%s", fam, other, d)
				}
			}
			if c.name == "ipv6_only" {
				if d := dump(t, c.cfg, backend.IPv4, Options{}); strings.Contains(d, "ns/v6") {
					t.Errorf("the IPv4 table of an IPv6-only configuration holds its service:\n%s", d)
				}
			}
		})
	}
}

// TestOneTransactionBothFamilies renders both families into one
// transaction of an Interface without a default table (every object names
// its own), which loads both tables at once.
func TestOneTransactionBothFamilies(t *testing.T) {
	cfg := loadHCL(t, "dual_stack")
	fake := knftables.NewFake("", "")
	tx := fake.NewTransaction()
	for _, fam := range backend.Families {
		if _, err := RenderConfig(tx, cfg, fam, upstreamOptions()); err != nil {
			t.Fatal(err)
		}
	}
	if err := fake.Run(context.Background(), tx); err != nil {
		t.Fatal(err)
	}
	want := dump(t, cfg, backend.IPv4, upstreamOptions()) + dump(t, cfg, backend.IPv6, upstreamOptions())
	if got := fake.Dump(); got != want {
		t.Errorf("one transaction for both families dumps differently from one per family:\n%s", got)
	}
}

// TestOwner checks the index of per-service objects: every chain and set
// whose name holds a "/" (kube-proxy's isServiceChainName) belongs to the
// service named in it, and nothing else is in the index.
func TestOwner(t *testing.T) {
	for _, tc := range goldenCases() {
		cfg := loadHCL(t, tc.name)
		for _, fam := range Families(service.Build(cfg, service.Options{Node: tc.opts.Node})) {
			fake := knftables.NewFake(nftFamily(fam), DefaultTable)
			tx := fake.NewTransaction()
			res, err := RenderConfig(tx, cfg, fam, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			if err := fake.Run(context.Background(), tx); err != nil {
				t.Fatal(err)
			}
			names := map[string]bool{}
			for name := range fake.Table.Chains {
				names[name] = true
			}
			for name := range fake.Table.Sets {
				names[name] = true
			}
			for name := range names {
				svc, ok := res.Owner[name]
				switch {
				case strings.Contains(name, "/") != ok:
					t.Errorf("%s %s: %s in the owner index: %v", tc.name, fam, name, ok)
				case ok && !strings.Contains(name, "-"+svc+"/"):
					t.Errorf("%s %s: %s is indexed as %s's", tc.name, fam, name, svc)
				}
			}
			for name := range res.Owner {
				if !names[name] {
					t.Errorf("%s %s: the owner index names %s, which is not in the table", tc.name, fam, name)
				}
			}
		}
	}
}

// TestRefused: a table name nft cannot read and a mark bit outside 0-31
// are refused, and nothing is added to the transaction.
func TestRefused(t *testing.T) {
	cfg := loadHCL(t, "overall")
	for _, c := range []struct {
		name string
		opts Options
		bit  int
	}{
		{"table name with a space", Options{Table: "svc nat"}, 14},
		{"table name starting with a digit", Options{Table: "1svcnat"}, 14},
		{"mark bit 32", Options{}, 32},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := cfg.Settings
			s.MasqueradeBit = c.bit
			tx := knftables.NewFake(knftables.IPv4Family, DefaultTable).NewTransaction()
			m := service.Build(cfg, service.Options{})
			if _, err := Render(tx, m, &s, backend.IPv4, c.opts); err == nil {
				t.Fatal("rendered without an error")
			}
			if n := tx.NumOperations(); n != 0 {
				t.Errorf("%d operations added", n)
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

// TestLimits keeps every name within nft's 256 bytes and every comment
// within its 128 (knftables checks neither): long_names has the longest
// names config admits.
func TestLimits(t *testing.T) {
	for _, tc := range goldenCases() {
		cfg := loadHCL(t, tc.name)
		for _, fam := range Families(service.Build(cfg, service.Options{Node: tc.opts.Node})) {
			fake := knftables.NewFake(nftFamily(fam), DefaultTable)
			if err := fake.ParseDump(dump(t, cfg, fam, tc.opts)); err != nil {
				t.Fatal(err)
			}
			var names, comments []string
			for name, c := range fake.Table.Chains {
				names = append(names, name)
				for _, r := range c.Rules {
					if r.Comment != nil {
						comments = append(comments, *r.Comment)
					}
				}
			}
			for name := range fake.Table.Sets {
				names = append(names, name)
			}
			for name, m := range fake.Table.Maps {
				names = append(names, name)
				for _, e := range m.Elements {
					if e.Comment != nil {
						comments = append(comments, *e.Comment)
					}
				}
			}
			for _, n := range names {
				if len(n) > knftables.NameLengthMax {
					t.Errorf("%s %s: name of %d bytes: %s", tc.name, fam, len(n), n)
				}
			}
			for _, c := range comments {
				if len(c) > knftables.CommentLengthMax {
					t.Errorf("%s %s: comment of %d bytes: %s", tc.name, fam, len(c), c)
				}
			}
		}
	}
}

// TestHashAndTruncate checks kube-proxy's chain name hash against the
// names its tests expect, and the cut of a name past 240 characters.
func TestHashAndTruncate(t *testing.T) {
	for name, want := range map[string]string{
		"ns1/svc1/tcp/p80":                "ULMVA6XW-ns1/svc1/tcp/p80",
		"ns1/svc1/tcp/p80__10.180.0.1/80": "5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80",
		"testing/service/tcp/http":        "P4ZYZVCF-testing/service/tcp/http",
	} {
		if got := hashAndTruncate(name); got != want {
			t.Errorf("hashAndTruncate(%q) = %q, want %q", name, got, want)
		}
	}
	long := strings.Repeat("x", 300)
	got := hashAndTruncate(long)
	if len(got) != chainNameBaseLengthMax || !strings.HasSuffix(got, "...") || got[8] != '-' {
		t.Errorf("hashAndTruncate of 300 characters = %q (%d bytes)", got, len(got))
	}
}
