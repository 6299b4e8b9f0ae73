package render

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/knftables"

	"github.com/svcnat/svcnat/internal/kernel/backend"
	"github.com/svcnat/svcnat/internal/service"
	"github.com/svcnat/svcnat/internal/testns"
)

// TestKernelAgrees loads every golden case's tables into a fresh network
// namespace with a real `nft -f -`, reads them back and requires the
// kernel to hold what knftables' Fake holds: the table's comment; the same
// chains, base chains with the same type, hook, priority and policy, and
// chain comments; the same sets and maps with the same type, flags,
// timeout and comment and the same elements (comments and verdicts
// included); and in every chain the same rules in the same order, word
// for word once nft's own rewrites (nftRewrites) are applied to the
// rendered text. Each family is loaded twice, into a table made from
// nothing each time: as the transaction Render builds (tx.String(), what
// knftables' Run writes to nft -f -) and as the golden file (the Fake's
// Dump, which TestGolden keeps it equal to; it orders objects otherwise). The namespace ends holding the
// tables of the families rendered and nothing else.
//
// nft runs only inside namespaces this test makes (testns's Exec is `ip
// netns exec`), never in the machine's own: the test checks that its
// commands land in another namespace than its own, and that a witness
// namespace made before the first load is still empty after the last, the
// stand-in for "nothing outside changed" that needs no listing of the
// machine's own rules.
func TestKernelAgrees(t *testing.T) {
	if why := testns.Available(); why != "" {
		t.Skip(why)
	}
	needNFT10(t)
	own, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	witness := testns.New(t)
	if got := nftIn(t, witness, "list", "ruleset"); got != "" {
		t.Fatalf("a fresh namespace has rules:\n%s", got)
	}
	t.Run("cases", func(t *testing.T) {
		for _, tc := range goldenCases() {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				ns := testns.New(t)
				if in := strings.TrimSpace(ns.MustExec(t, "", "readlink", "/proc/self/ns/net")); in == own {
					t.Fatalf("commands run in %s land in the test's own namespace %s", ns.Name, own)
				}
				cfg := loadHCL(t, tc.name)
				fams := Families(service.Build(cfg, service.Options{Node: tc.opts.Node, LocalAddresses: tc.opts.LocalAddresses}))
				var fakes []*knftables.Fake
				var txs []*knftables.Transaction
				var want []string
				for _, fam := range fams {
					fake := knftables.NewFake(nftFamily(fam), DefaultTable)
					tx := fake.NewTransaction()
					if _, err := RenderConfig(tx, cfg, fam, tc.opts); err != nil {
						t.Fatal(err)
					}
					if err := fake.Run(context.Background(), tx); err != nil {
						t.Fatal(err)
					}
					fakes, txs = append(fakes, fake), append(txs, tx)
					want = append(want, fmt.Sprintf("table %s %s", nftFamily(fam), DefaultTable))
				}
				for _, in := range []struct {
					what string
					text func(i int) string
				}{
					{"the transaction", func(i int) string { return txs[i].String() }},
					{"the golden", func(i int) string { return golden(t, tc.name, fams[i]) }},
				} {
					// The namespace is this test's own: start each round
					// from nothing.
					nftIn(t, ns, "flush", "ruleset")
					for i, fam := range fams {
						if _, err := ns.Exec(in.text(i), "nft", "-f", "-"); err != nil {
							t.Fatalf("%s: loading %s: %v\n%s", fam, in.what, err, numbered(in.text(i)))
						}
						compareTable(t, fmt.Sprintf("%s %s", fam, in.what), fakes[i].Table, readTable(t, ns, nftFamily(fam)))
					}
				}
				got := strings.Split(strings.TrimSpace(nftIn(t, ns, "list", "tables")), "\n")
				if !slices.Equal(got, want) {
					t.Errorf("the namespace holds tables %q, want %q", got, want)
				}
			})
		}
	})
	if got := nftIn(t, witness, "list", "ruleset"); got != "" {
		t.Errorf("loading into the tests' namespaces changed the witness namespace:\n%s", got)
	}
}

// golden is the text of testdata/<name>.<v4|v6>.nft.
func golden(t *testing.T, name string, fam backend.Family) string {
	t.Helper()
	data, err := os.ReadFile(goldenPath(name, fam))
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// nftIn runs nft with args inside ns and returns its output.
func nftIn(t *testing.T, ns *testns.NS, args ...string) string {
	t.Helper()
	return ns.MustExec(t, "", "nft", args...)
}

// listedTable is a table as nft lists it: the text listing gives rule
// text and comments of the table and chains (nft 1.0.6's JSON has no
// table or chain comments); the JSON listing gives base chain properties,
// set and map properties and elements, which it prints unambiguously.
type listedTable struct {
	comment string
	chains  map[string]*listedChain
	sets    map[string]*listedSet // sets and maps
}

type listedChain struct {
	typ, hook, policy string
	prio              *int
	comment           string
	rules             []string // from the text listing
	jsonRules         int
}

type listedSet struct {
	isMap    bool
	typ      string   // "a . b" or "a . b : verdict"
	flags    []string // from the text listing: nft 1.0.6's JSON leaves out "dynamic"
	timeout  int      // seconds
	comment  string
	elements []string // "key . key [comment "c"] [: value]", sorted
}

// readTable lists svcnat's table of family fam in ns, as text and JSON.
func readTable(t *testing.T, ns *testns.NS, fam knftables.Family) *listedTable {
	t.Helper()
	lt := &listedTable{chains: map[string]*listedChain{}, sets: map[string]*listedSet{}}
	parseListing(t, lt, nftIn(t, ns, "list", "table", string(fam), DefaultTable))
	parseJSONListing(t, lt, nftIn(t, ns, "-j", "list", "table", string(fam), DefaultTable))
	return lt
}

// parseListing reads `nft list table`: the table's comment, each chain's
// comment and rules, and each set's flags line. Sets' elements are read
// from JSON instead.
func parseListing(t *testing.T, lt *listedTable, text string) {
	t.Helper()
	var chain *listedChain
	var set *listedSet
	inElements := false
	for _, line := range strings.Split(text, "\n") {
		l := strings.TrimSpace(line)
		depth := len(line) - len(strings.TrimLeft(line, "\t"))
		switch {
		case l == "":
		case inElements:
			inElements = !strings.HasSuffix(l, "}")
		case depth == 1 && strings.HasPrefix(l, "comment "):
			lt.comment = unquote(t, strings.TrimPrefix(l, "comment "))
		case depth == 1 && strings.HasPrefix(l, "chain ") && strings.HasSuffix(l, " {"):
			name := strings.TrimSuffix(strings.TrimPrefix(l, "chain "), " {")
			chain, set = &listedChain{}, nil
			lt.chains[name] = chain
		case depth == 1 && (strings.HasPrefix(l, "set ") || strings.HasPrefix(l, "map ")) && strings.HasSuffix(l, " {"):
			name := strings.TrimSuffix(l[4:], " {")
			chain, set = nil, &listedSet{}
			lt.sets[name] = set
		case depth == 1 && l == "}":
			chain, set = nil, nil
		case depth == 2 && chain != nil && strings.HasPrefix(l, "type ") && strings.HasSuffix(l, ";"):
			// the base chain's header: read from JSON, which keeps the
			// priority a number (text says "dstnat - 10" for -110)
		case depth == 2 && chain != nil && strings.HasPrefix(l, "comment "):
			chain.comment = unquote(t, strings.TrimPrefix(l, "comment "))
		case depth == 2 && chain != nil:
			chain.rules = append(chain.rules, l)
		case depth == 2 && set != nil && strings.HasPrefix(l, "elements = {"):
			inElements = !strings.HasSuffix(l, "}")
		case depth == 2 && set != nil && strings.HasPrefix(l, "flags "):
			set.flags = strings.Split(strings.TrimPrefix(l, "flags "), ",")
		case depth == 2 && set != nil:
			// type, size, timeout, comment: read from JSON
		case depth == 0 && (strings.HasPrefix(l, "table ") || l == "}"):
		default:
			t.Fatalf("unexpected line in nft's listing: %q\n%s", line, text)
		}
	}
}

func unquote(t *testing.T, s string) string {
	t.Helper()
	u, err := strconv.Unquote(s)
	if err != nil {
		t.Fatalf("comment %s: %v", s, err)
	}
	return u
}

// parseJSONListing reads `nft -j list table` (json_schema_version 1).
func parseJSONListing(t *testing.T, lt *listedTable, text string) {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(text))
	dec.UseNumber()
	var doc struct {
		Nftables []map[string]json.RawMessage `json:"nftables"`
	}
	if err := dec.Decode(&doc); err != nil {
		t.Fatalf("nft -j: %v\n%s", err, text)
	}
	decode := func(raw json.RawMessage, v any) {
		d := json.NewDecoder(bytes.NewReader(raw))
		d.UseNumber()
		if err := d.Decode(v); err != nil {
			t.Fatalf("nft -j: %v: %s", err, raw)
		}
	}
	for _, o := range doc.Nftables {
		for kind, raw := range o {
			switch kind {
			case "metainfo", "table":
			case "chain":
				var c struct {
					Name, Type, Hook, Policy string
					Prio                     *int
				}
				decode(raw, &c)
				lc := lt.chains[c.Name]
				if lc == nil {
					t.Fatalf("chain %s is in the JSON listing, not in the text one", c.Name)
				}
				lc.typ, lc.hook, lc.prio, lc.policy = c.Type, c.Hook, c.Prio, c.Policy
			case "rule":
				var r struct{ Chain string }
				decode(raw, &r)
				if lc := lt.chains[r.Chain]; lc != nil {
					lc.jsonRules++
				}
			case "set", "map":
				var s struct {
					Name    string
					Type    any
					Map     string
					Timeout int
					Comment string
					Elem    []any
				}
				decode(raw, &s)
				ls := lt.sets[s.Name]
				if ls == nil {
					t.Fatalf("%s %s is in the JSON listing, not in the text one", kind, s.Name)
				}
				ls.isMap = kind == "map"
				ls.typ = jsonValue(t, s.Type)
				if ls.isMap {
					ls.typ += " : " + s.Map
				}
				ls.timeout, ls.comment = s.Timeout, s.Comment
				for _, e := range s.Elem {
					ls.elements = append(ls.elements, jsonElement(t, e, ls.isMap))
				}
				sort.Strings(ls.elements)
			default:
				t.Fatalf("unexpected %s in nft's JSON listing", kind)
			}
		}
	}
}

// jsonElement is one element of a set ("elem") or map ([key, value]) as
// elementString writes the Fake's.
func jsonElement(t *testing.T, e any, isMap bool) string {
	t.Helper()
	var key, value any = e, nil
	if isMap {
		kv, ok := e.([]any)
		if !ok || len(kv) != 2 {
			t.Fatalf("map element %v is not [key, value]", e)
		}
		key, value = kv[0], kv[1]
	}
	var comment *string
	if m, ok := key.(map[string]any); ok {
		if inner, ok := m["elem"].(map[string]any); ok {
			key = inner["val"]
			if c, ok := inner["comment"].(string); ok {
				comment = &c
			}
		}
	}
	var vals []string
	if value != nil {
		vals = []string{jsonValue(t, value)}
	}
	return elementString(strings.Split(jsonValue(t, key), " . "), comment, vals)
}

// jsonValue writes an nft JSON expression as nft text: a string or
// number as itself, a list (a concatenated type) and a concat joined by
// " . ", a prefix as addr/len, a range as a-b, a verdict as its keyword
// with its target.
func jsonValue(t *testing.T, v any) string {
	t.Helper()
	switch v := v.(type) {
	case string:
		return v
	case json.Number:
		return v.String()
	case []any:
		var parts []string
		for _, p := range v {
			parts = append(parts, jsonValue(t, p))
		}
		return strings.Join(parts, " . ")
	case map[string]any:
		if len(v) == 1 {
			for k, x := range v {
				switch k {
				case "concat":
					return jsonValue(t, x)
				case "prefix":
					p := x.(map[string]any)
					return jsonValue(t, p["addr"]) + "/" + jsonValue(t, p["len"])
				case "range":
					r := x.([]any)
					return jsonValue(t, r[0]) + "-" + jsonValue(t, r[1])
				case "goto", "jump":
					return k + " " + jsonValue(t, x.(map[string]any)["target"])
				case "accept", "drop", "continue", "return":
					return k
				}
			}
		}
	}
	t.Fatalf("unexpected expression in nft's JSON listing: %#v", v)
	return ""
}

// elementString writes an element as the Fake's dump does inside its
// braces.
func elementString(key []string, comment *string, value []string) string {
	s := strings.Join(key, " . ")
	if comment != nil {
		s += fmt.Sprintf(" comment %q", *comment)
	}
	if len(value) > 0 {
		s += " : " + strings.Join(value, " . ")
	}
	return s
}

// compareTable reports every difference between the Fake's table and
// the listed one.
func compareTable(t *testing.T, what string, want *knftables.FakeTable, got *listedTable) {
	t.Helper()
	if c := deref(want.Comment); c != got.comment {
		t.Errorf("%s: table comment %q, want %q", what, got.comment, c)
	}
	names := func(m map[string]bool) []string {
		var s []string
		for k := range m {
			s = append(s, k)
		}
		sort.Strings(s)
		return s
	}
	wantChains, gotChains := map[string]bool{}, map[string]bool{}
	for name := range want.Chains {
		wantChains[name] = true
	}
	for name := range got.chains {
		gotChains[name] = true
	}
	if w, g := names(wantChains), names(gotChains); !slices.Equal(w, g) {
		t.Errorf("%s: chains differ:\n%s", what, lineDiff(w, g))
	}
	for name, wc := range want.Chains {
		gc := got.chains[name]
		if gc == nil {
			continue
		}
		if deref(wc.Comment) != gc.comment {
			t.Errorf("%s: chain %s: comment %q, want %q", what, name, gc.comment, deref(wc.Comment))
		}
		if wc.Type != nil {
			policy := "accept"
			if wc.Policy != nil {
				policy = string(*wc.Policy)
			}
			prio, err := strconv.Atoi(string(*wc.Priority))
			if err != nil {
				t.Fatalf("%s: chain %s: priority %q is not a number", what, name, *wc.Priority)
			}
			if string(*wc.Type) != gc.typ || string(*wc.Hook) != gc.hook || gc.prio == nil || *gc.prio != prio || policy != gc.policy {
				t.Errorf("%s: base chain %s: type %s hook %s priority %v policy %s, want %s %s %d %s",
					what, name, gc.typ, gc.hook, deref(gc.prio), gc.policy, *wc.Type, *wc.Hook, prio, policy)
			}
		} else if gc.typ != "" {
			t.Errorf("%s: chain %s is a base chain (%s hook %s)", what, name, gc.typ, gc.hook)
		}
		var rules []string
		for _, r := range wc.Rules {
			s := AsListed(r.Rule)
			if r.Comment != nil {
				s += fmt.Sprintf(" comment %q", *r.Comment)
			}
			rules = append(rules, s)
		}
		if !slices.Equal(rules, gc.rules) || gc.jsonRules != len(wc.Rules) {
			t.Errorf("%s: chain %s: the kernel lists other rules (%d in its JSON)\nrendered, as nft lists it:\n  %s\nlisted:\n  %s",
				what, name, gc.jsonRules, strings.Join(rules, "\n  "), strings.Join(gc.rules, "\n  "))
		}
	}

	wantSets := map[string]*listedSet{}
	for name, s := range want.Sets {
		wantSets[name] = &listedSet{typ: typeOrTypeOf(s.Type, s.TypeOf), flags: flagStrings(s.Flags), timeout: seconds(s.Timeout),
			comment: deref(s.Comment), elements: elementStrings(s.Elements)}
	}
	for name, m := range want.Maps {
		wantSets[name] = &listedSet{isMap: true, typ: typeOrTypeOf(m.Type, m.TypeOf), flags: flagStrings(m.Flags), timeout: seconds(m.Timeout),
			comment: deref(m.Comment), elements: elementStrings(m.Elements)}
	}
	wantNames, gotNames := map[string]bool{}, map[string]bool{}
	for name := range wantSets {
		wantNames[name] = true
	}
	for name := range got.sets {
		gotNames[name] = true
	}
	if w, g := names(wantNames), names(gotNames); !slices.Equal(w, g) {
		t.Errorf("%s: sets and maps differ:\n%s", what, lineDiff(w, g))
	}
	for name, ws := range wantSets {
		gs := got.sets[name]
		if gs == nil {
			continue
		}
		if ws.isMap != gs.isMap || ws.typ != gs.typ || !slices.Equal(ws.flags, gs.flags) || ws.timeout != gs.timeout || ws.comment != gs.comment {
			t.Errorf("%s: %s: map %v type %q flags %q timeout %ds comment %q, want map %v type %q flags %q timeout %ds comment %q",
				what, name, gs.isMap, gs.typ, gs.flags, gs.timeout, gs.comment,
				ws.isMap, ws.typ, ws.flags, ws.timeout, ws.comment)
		}
		if !slices.Equal(ws.elements, gs.elements) {
			t.Errorf("%s: %s: elements differ:\n%s", what, name, lineDiff(ws.elements, gs.elements))
		}
	}
}

// typeOrTypeOf is a set's or map's type as nft's JSON gives it: typ, or
// the types of the expressions a "typeof" declaration names (the ones
// the renderer writes).
func typeOrTypeOf(typ, typeOf string) string {
	if typeOf == "" {
		return typ
	}
	return strings.NewReplacer("numgen random mod 1", "integer", "ip daddr", "ipv4_addr", "ip saddr", "ipv4_addr",
		"ip6 daddr", "ipv6_addr", "ip6 saddr", "ipv6_addr", "tcp dport", "inet_service", "udp dport", "inet_service",
		"sctp dport", "inet_service").Replace(typeOf)
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

func flagStrings(flags []knftables.SetFlag) []string {
	var out []string
	for _, f := range flags {
		out = append(out, string(f))
	}
	return out
}

func seconds(d *time.Duration) int {
	if d == nil {
		return 0
	}
	return int(d.Seconds())
}

func elementStrings(elems []*knftables.Element) []string {
	var out []string
	for _, e := range elems {
		out = append(out, elementString(e.Key, e.Comment, e.Value))
	}
	sort.Strings(out)
	return out
}

func numbered(s string) string {
	var b strings.Builder
	for i, l := range strings.Split(strings.TrimSuffix(s, "\n"), "\n") {
		fmt.Fprintf(&b, "%4d  %s\n", i+1, l)
	}
	return b.String()
}

// needNFT10 skips a test without nft, or with an nft other than 1.0.x,
// whose listing the rewrites above (nftRewrites) are written for: Debian
// 12's 1.0.6, what make deps installs. Another nft lists rules in its own
// words, which this test would take for disagreement.
func needNFT10(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skip("needs nft (Debian's nftables; make deps installs it)")
	}
	out, err := exec.Command("nft", "--version").Output()
	if err != nil {
		t.Skipf("nft --version: %v", err)
	}
	if !strings.Contains(string(out), " v1.0.") {
		t.Skipf("the listing this test compares is nft 1.0's; this is %s", strings.TrimSpace(string(out)))
	}
}

// TestListedFormLoads: the model's text form, whose rules are written as
// nft lists them (AsListed), is input nft 1.0.6 reads into the very table
// the written form makes: svcnat writes what it compares.
func TestListedFormLoads(t *testing.T) {
	if why := testns.Available(); why != "" {
		t.Skip(why)
	}
	needNFT10(t)
	for _, tc := range goldenCases() {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ns := testns.New(t)
			cfg := loadHCL(t, tc.name)
			m := service.Build(cfg, service.Options{Node: tc.opts.Node, LocalAddresses: tc.opts.LocalAddresses})
			for _, fam := range Families(m) {
				list := func(script string) string {
					nftIn(t, ns, "flush", "ruleset")
					if _, err := ns.Exec(script, "nft", "-f", "-"); err != nil {
						t.Fatalf("%s: %v\n%s", fam, err, numbered(script))
					}
					return nftIn(t, ns, "list", "table", string(nftFamily(fam)), DefaultTable)
				}
				rs, _, err := RenderModel(m, &cfg.Settings, fam, tc.opts)
				if err != nil {
					t.Fatal(err)
				}
				// The model leaves the table's comment to the backend that
				// creates it, as it does here.
				table := fmt.Sprintf("add table %s %s { comment \"rules for %s\" ; }\n", nftFamily(fam), DefaultTable, DefaultTable)
				if written, listed := list(golden(t, tc.name, fam)), list(table+rs.Text()); written != listed {
					t.Errorf("%s: the listed form loads into another table:\n%s\nwant:\n%s", fam, listed, written)
				}
			}
		})
	}
}
