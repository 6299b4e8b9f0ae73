package render

import (
	"slices"
	"strings"
	"testing"

	"github.com/svcnat/svcnat/internal/kernel/backend"
	"github.com/svcnat/svcnat/internal/service"
)

// TestModelIsTheGolden: the model a case renders to is its golden read
// into the model, and its text form reads back to the same bytes.
func TestModelIsTheGolden(t *testing.T) {
	for _, tc := range goldenCases() {
		cfg := loadHCL(t, tc.name)
		m := service.Build(cfg, service.Options{Node: tc.opts.Node, LocalAddresses: tc.opts.LocalAddresses})
		for _, fam := range Families(m) {
			rs, _, err := RenderModel(m, &cfg.Settings, fam, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			want, err := ToModel(fam, golden(t, tc.name, fam))
			if err != nil {
				t.Fatal(err)
			}
			if rs.Text() != want.Text() {
				t.Errorf("%s %s: the model is not the golden's:\n%s\nwant:\n%s", tc.name, fam, rs.Text(), want.Text())
			}
			back, err := Renderer{}.Parse(fam, strings.NewReader(rs.Text()))
			if err != nil {
				t.Fatal(err)
			}
			if back.Text() != rs.Text() {
				t.Errorf("%s %s: text form does not read back", tc.name, fam)
			}
			if rs.Syntax != backend.NFTables || len(rs.Tables) != 1 || rs.Tables[0].Name != DefaultTable {
				t.Errorf("%s %s: tables %v", tc.name, fam, rs.Tables)
			}
		}
	}
}

// TestRendererNamesTheTableAfterThePrefix: backend.Renderer renders into
// the table of the configuration's chain prefix, and says whose each
// per-service chain is.
func TestRendererNamesTheTableAfterThePrefix(t *testing.T) {
	cfg := loadHCL(t, "overall")
	cfg.Settings.ChainPrefix = "EDGE"
	out, err := Renderer{}.Render(cfg, upstreamOptions().RenderOptions)
	if err != nil {
		t.Fatal(err)
	}
	rs := out.Rulesets[backend.IPv4]
	if len(rs.Tables) != 1 || rs.Tables[0].Name != "edge" {
		t.Fatalf("tables %v, want edge", rs.Tables)
	}
	if !strings.Contains(rs.Text(), "add rule ip edge masquerading meta mark & 0x00004000 != 0x00000000 meta mark set meta mark ^ 0x00004000 masquerade fully-random\n") {
		t.Errorf("rules are not as nft lists them:\n%s", rs.Text())
	}
	if got := out.ChainService["service-42NFTM6N-ns2/svc2/tcp/p80"]; got != "ns2/svc2" {
		t.Errorf("service chain belongs to %q", got)
	}
	// ns1/svc1's port is chainless: it uses a dispatch chain, owns none.
	if got := out.ChainUsers[backend.IPv4]["dispatch-tcp-1"]; !slices.Equal(got, []string{"ns1/svc1"}) {
		t.Errorf("dispatch-tcp-1 is used by %q", got)
	}
	if _, ok := out.ChainService["service-ULMVA6XW-ns1/svc1/tcp/p80"]; ok {
		t.Errorf("the chainless port of ns1/svc1 has a service chain")
	}
}

// TestAsListedHostPrefixes: nft 1.0.6 lists a prefix of one address
// without its length, alone or in a set (seen in a namespace: `ip saddr
// != { 192.0.2.2/32 } drop` is listed `ip saddr != 192.0.2.2 drop`), so
// a load balancer source range of one client reads back as rendered.
func TestAsListedHostPrefixes(t *testing.T) {
	for _, c := range []struct{ written, listed string }{
		{"ip saddr != { 192.0.2.2/32 } drop", "ip saddr != 192.0.2.2 drop"},
		{"ip saddr != { 192.0.2.2/32 , 10.0.0.0/8 } drop", "ip saddr != { 10.0.0.0/8, 192.0.2.2 } drop"},
		{"ip6 saddr != { 2001:db8::1/128 } drop", "ip6 saddr != 2001:db8::1 drop"},
		{"ip6 saddr != { 2001:db8::1/128 , 2001:db8:1::/48 } drop", "ip6 saddr != { 2001:db8::1, 2001:db8:1::/48 } drop"},
		{"ip saddr 10.9.9.9/32 drop", "ip saddr 10.9.9.9 drop"},
		{"ip saddr != 10.64.0.0/14 jump mark-for-masquerade", "ip saddr != 10.64.0.0/14 jump mark-for-masquerade"},
	} {
		if got := AsListed(c.written); got != c.listed {
			t.Errorf("AsListed(%q) = %q, want %q", c.written, got, c.listed)
		}
	}
}
