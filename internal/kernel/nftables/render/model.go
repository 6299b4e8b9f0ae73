package render

import (
	"fmt"
	"io"
	"net/netip"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"sigs.k8s.io/knftables"

	"github.com/svcnat/svcnat/internal/config"
	"github.com/svcnat/svcnat/internal/kernel/backend"
	"github.com/svcnat/svcnat/internal/service"
)

// Renderer is the nftables backend's backend.Renderer: a configuration
// rendered into svcnat's table of each family, in the model's canonical
// form, where rules read as nft lists them (AsListed), so that desired
// and live objects compare line for line.
type Renderer struct{}

// Render renders cfg for the host opts describes: the table named after
// the chain prefix (backend.NFTTable) in each family the model has.
func (Renderer) Render(cfg *config.Config, opts backend.RenderOptions) (*backend.Rendered, error) {
	m := service.Build(cfg, service.Options{Node: opts.Node, LocalAddresses: opts.LocalAddresses})
	out := &backend.Rendered{Rulesets: map[backend.Family]*backend.Ruleset{}, ChainService: map[string]string{},
		ChainUsers: map[backend.Family]map[string][]string{}, Shares: map[string]*backend.Shares{}}
	o := Options{RenderOptions: opts, Table: backend.NFTTable(cfg.Settings.ChainPrefix)}
	for _, fam := range Families(m) {
		rs, res, err := RenderModel(m, &cfg.Settings, fam, o)
		if err != nil {
			return nil, err
		}
		out.Rulesets[fam] = rs
		for name, svc := range res.Owner {
			out.ChainService[name] = svc
		}
		out.ChainUsers[fam] = res.Users
		for svc, sh := range res.Shares {
			if out.Shares[svc] == nil {
				out.Shares[svc] = &backend.Shares{}
			}
			out.Shares[svc].Add(sh, 1)
		}
	}
	return out, nil
}

// Parse reads the model's nftables text form (backend.ParseNFT).
func (Renderer) Parse(fam backend.Family, r io.Reader) (*backend.Ruleset, error) {
	return backend.ParseNFT(fam, r)
}

// WriteInput writes rs as an nft -f script that makes svcnat's table from
// nothing, after a comment saying what it is for.
func (Renderer) WriteInput(w io.Writer, rs *backend.Ruleset, node string) error {
	n := 0
	for _, t := range rs.Tables {
		n += len(t.Chains)
	}
	if _, err := fmt.Fprintf(w, "# %s: %d objects, %d rules and elements, for nft -f (node %s)\n", rs.Family, n, rs.RuleCount(), node); err != nil {
		return err
	}
	return rs.WriteText(w)
}

// RenderModel renders family fam of model m into the backend model: the
// objects Render adds to a transaction, read back as the model keeps
// them (rules as nft lists them, elements sorted).
func RenderModel(m *service.Model, s *config.Settings, fam backend.Family, opts Options) (*backend.Ruleset, *Result, error) {
	if opts.Table == "" {
		opts.Table = DefaultTable
	}
	tx := knftables.NewFake(nftFamily(fam), opts.Table).NewTransaction()
	res, err := Render(tx, m, s, fam, opts)
	if err != nil {
		return nil, nil, err
	}
	rs, err := ToModel(fam, tx.String())
	if err != nil {
		return nil, nil, err
	}
	return rs, res, nil
}

// ToModel reads a script of "add" commands as knftables writes them (a
// transaction's String, a Fake's Dump) into the model's canonical form:
// each rule as nft lists it (AsListed), each set's elements sorted.
func ToModel(fam backend.Family, script string) (*backend.Ruleset, error) {
	rs, err := backend.ParseNFT(fam, strings.NewReader(script))
	if err != nil {
		return nil, err
	}
	for _, t := range rs.Tables {
		for _, c := range t.Chains {
			if c.Kind != backend.KindChain {
				backend.SortElements(c.Rules)
				continue
			}
			for i, r := range c.Rules {
				c.Rules[i] = backend.NFTRuleOf(r.Chain, AsListed(r.Text()))
			}
		}
	}
	return rs, nil
}

// nftRewrites are how nft 1.0.6 prints back rules that knftables (and
// kube-proxy) write otherwise, each seen in the goldens: the mark
// shorthand becomes meta mark with C operators and a full-width zero,
// "dnat ip addr . port to" loses "addr . port", an anonymous set or map
// is listed without the space before its commas, and a one-element
// anonymous set loses its braces. Besides these, a timeout in seconds
// inside a rule (the affinity set's update) is listed in nft's units
// ("10800s" as "3h", nftDuration), and an anonymous set of
// addresses and prefixes (an interval set, such as a firewall chain's
// source ranges) is listed in address order (sortAddressSets).
// Everything else is printed as written. TestKernelAgrees holds the
// kernel to it.
var nftRewrites = []struct {
	needs   string // text every match holds
	written *regexp.Regexp
	listed  string
}{
	{"mark set mark or ", regexp.MustCompile(`\bmark set mark or (0x[0-9a-f]+)`), "meta mark set meta mark | $1"},
	{"mark set mark xor ", regexp.MustCompile(`\bmark set mark xor (0x[0-9a-f]+)`), "meta mark set meta mark ^ $1"},
	{"mark and ", regexp.MustCompile(`\bmark and (0x[0-9a-f]+) != 0\b`), "meta mark & $1 != 0x00000000"},
	{" addr . port to ", regexp.MustCompile(`\bdnat (ip6?) addr \. port to\b`), "dnat $1 to"},
	{" , ", regexp.MustCompile(` , `), ", "},
	{"{ ", regexp.MustCompile(`\{ ([^ ,{}]+) \}`), "$1"},
}

// anonymousSet is an anonymous set or map as nft lists it.
var anonymousSet = regexp.MustCompile(`\{ [^{}]+ \}`)

// ruleTimeout is a timeout in seconds in a rule, as svcnat writes it.
var ruleTimeout = regexp.MustCompile(`\btimeout ([0-9]+)s\b`)

// prefixWord is a word that may be an address prefix.
var prefixWord = regexp.MustCompile(`[0-9A-Fa-f:.]+/[0-9]+\b`)

// AsListed is rule text as knftables writes it, as nft lists it.
//
// Each rewrite runs only on a rule holding the text it needs (a plan
// rewrites a few hundred thousand rules; most need none).
func AsListed(rule string) string {
	for _, rw := range nftRewrites {
		if strings.Contains(rule, rw.needs) {
			rule = rw.written.ReplaceAllString(rule, rw.listed)
		}
	}
	if strings.Contains(rule, "timeout ") {
		rule = ruleTimeout.ReplaceAllStringFunc(rule, func(t string) string {
			n, err := strconv.ParseUint(ruleTimeout.FindStringSubmatch(t)[1], 10, 64)
			if err != nil {
				return t
			}
			return "timeout " + nftDuration(n)
		})
	}
	// hostPrefix changes only a prefix of one address: most rules hold a
	// prefix (the cluster CIDRs' masquerade check), few a /32 or /128,
	// and the regular expression cost a fifth of reading a table back.
	if strings.Contains(rule, "/32") || strings.Contains(rule, "/128") {
		rule = prefixWord.ReplaceAllStringFunc(rule, hostPrefix)
	}
	if strings.Contains(rule, "{ ") {
		rule = anonymousSet.ReplaceAllStringFunc(rule, sortAddressSets)
	}
	return rule
}

// nftDuration is a number of seconds as nft prints a time: days, hours,
// minutes and seconds, each only when not zero ("1d3h", "5m", "0s").
func nftDuration(secs uint64) string {
	if secs == 0 {
		return "0s"
	}
	var b strings.Builder
	for _, u := range []struct {
		n    uint64
		unit string
	}{{86400, "d"}, {3600, "h"}, {60, "m"}, {1, "s"}} {
		if q := secs / u.n; q > 0 {
			fmt.Fprintf(&b, "%d%s", q, u.unit)
			secs %= u.n
		}
	}
	return b.String()

}

// hostPrefix is a prefix of one address (/32, /128) as nft lists it: the
// address alone, in a set or not (a load balancer source range of one
// client, "192.0.2.2/32", is listed "192.0.2.2"). Anything else is
// returned as it is.
func hostPrefix(word string) string {
	p, err := netip.ParsePrefix(word)
	if err != nil || !p.IsSingleIP() {
		return word
	}
	return p.Addr().String()
}

// sortAddressSets sorts "{ a, b, … }" by address then prefix length when
// every element is an address or a prefix, as nft lists an interval set;
// anything else is returned as it is.
func sortAddressSets(set string) string {
	elems := strings.Split(strings.TrimSuffix(strings.TrimPrefix(set, "{ "), " }"), ", ")
	prefixes := make([]netip.Prefix, len(elems))
	for i, e := range elems {
		p, err := netip.ParsePrefix(e)
		if err != nil {
			a, err := netip.ParseAddr(e)
			if err != nil {
				return set
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		prefixes[i] = p
	}
	idx := make([]int, len(elems))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(i, j int) bool {
		a, b := prefixes[idx[i]], prefixes[idx[j]]
		if c := a.Addr().Compare(b.Addr()); c != 0 {
			return c < 0
		}
		return a.Bits() < b.Bits()
	})
	sorted := make([]string, len(elems))
	for i, k := range idx {
		sorted[i] = elems[k]
	}
	return "{ " + strings.Join(sorted, ", ") + " }"
}
