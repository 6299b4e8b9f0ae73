package nftables

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/svcnat/svcnat/internal/kernel/backend"
)

// TestParseListing reads what nft 1.0.6 listed for render's overall case
// (loaded from its golden) and requires the model render's own output
// gives: declarations in knftables' form, rules as listed, elements
// sorted, the dynamic affinity set's elements left out.
func TestParseListing(t *testing.T) {
	data, err := os.ReadFile("testdata/overall.v4.list")
	if err != nil {
		t.Fatal(err)
	}
	tab, err := parseListing(string(data))
	if err != nil {
		t.Fatal(err)
	}
	got := &backend.Ruleset{Family: backend.IPv4, Syntax: backend.NFTables, Tables: []*backend.Table{tab}}
	want := desired(t, hclCase(t, "overall"), backend.IPv4)
	if g, w := got.Text(), want.Text(); g != w {
		t.Fatalf("the listing reads as\n%s\nwant\n%s", g, w)
	}
}

func TestParseListingDynamicElements(t *testing.T) {
	text := "table ip svcnat {\n\tset a {\n\t\ttype ipv4_addr\n\t\tsize 65535\n\t\tflags dynamic,timeout\n\t\ttimeout 1d3h\n" +
		"\t\telements = { 10.0.0.1 timeout 3h expires 2h59m58s,\n\t\t\t     10.0.0.2 timeout 3h expires 1h }\n\t}\n" +
		"\tmap m {\n\t\ttype inet_proto . inet_service : verdict\n\t\telements = { tcp . 80 comment \"a, b }\" : drop,\n\t\t\t     tcp . 1 : accept }\n\t}\n}\n"
	tab, err := parseListing(text)
	if err != nil {
		t.Fatal(err)
	}
	a, m := tab.Chain("a"), tab.Chain("m")
	if a.Policy != "type ipv4_addr ; flags dynamic,timeout ; timeout 97200s ;" || len(a.Rules) != 0 {
		t.Errorf("dynamic set: %q %v", a.Policy, a.Rules)
	}
	if m.Kind != backend.KindMap || len(m.Rules) != 2 || m.Rules[1].Text() != `tcp . 80 comment "a, b }" : drop` {
		t.Errorf("map: %v %q", m.Kind, m.Rules)
	}
}

func TestPriorityNumber(t *testing.T) {
	for in, want := range map[string]string{"dstnat": "-100", "dstnat - 10": "-110", "filter + 5": "5", "srcnat": "100", "-110": "-110", "raw": "-300"} {
		if got := priorityNumber(in); got != want {
			t.Errorf("%q: %q, want %q", in, got, want)
		}
	}
}

// TestFakeLifecycle applies render's overall case from nothing, changes
// an endpoint, removes a service, changes the affinity set's declaration
// and destroys, on the Fake: each step reads back as desired.
func TestFakeLifecycle(t *testing.T) {
	for _, batch := range []int{backend.NoStaging, 3} {
		for _, fam := range backend.Families {
			k := NewFake(testPrefix)
			steps := lifecycle(t)
			if fam == backend.IPv6 {
				steps = lifecycle6(t)
			}
			for _, step := range steps {
				final := apply(t, k, fam, step.want, batch)
				got, err := k.Read(fam, nil)
				if err != nil {
					t.Fatal(err)
				}
				if g, w := got.Text(), step.want.Text(); g != w {
					t.Fatalf("%s, batch %d, %s: read back\n%s\nwant\n%s", fam, batch, step.name, g, w)
				}
				if step.maxLines > 0 && final.Lines > step.maxLines {
					t.Errorf("%s, batch %d, %s: %d lines, want at most %d:\n%s", fam, batch, step.name, final.Lines, step.maxLines, final.Payload)
				}
			}
			nft := backend.NFTFamily(fam)
			if err := k.runScript(fam, []byte("add chain "+nft+" svcnat someones\n")); err != nil {
				t.Fatal(err)
			}
			if _, err := k.RemoveTable(fam, "svcnat"); !errors.Is(err, backend.ErrTableInUse) {
				t.Fatalf("RemoveTable of a table in use: %v", err)
			}
			if err := k.runScript(fam, []byte("delete chain "+nft+" svcnat someones\n")); err != nil {
				t.Fatal(err)
			}
			if ok, err := k.RemoveTable(fam, "svcnat"); !ok || err != nil {
				t.Fatalf("RemoveTable: %v %v", ok, err)
			}
			if got, _ := k.Read(fam, nil); len(got.Tables) != 0 {
				t.Fatalf("the table stays: %s", got.Text())
			}
			if ok, err := k.RemoveTable(fam, "svcnat"); ok || err != nil {
				t.Fatalf("RemoveTable of no table: %v %v", ok, err)
			}
		}
	}
}

// lifecycle6 is an IPv6 sequence: render's dual_stack case, an endpoint
// changed, destroyed.
func lifecycle6(t testing.TB) []step {
	fam := backend.IPv6
	return []step{
		{"create", desired(t, hclCase(t, "dual_stack"), fam), 0},
		{"one endpoint", desired(t, hclCase(t, "dual_stack", `address = "fd00:10::64"`, `address = "fd00:10::99"`), fam), 0},
		{"destroy", empty(fam), 0},
	}
}

type step struct {
	name     string
	want     *backend.Ruleset
	maxLines int
}

// lifecycle is the sequence the Fake and the kernel run.
func lifecycle(t testing.TB) []step {
	svc1 := "service \"ns1/svc1\" {\n  cluster_ips = [\"172.30.0.41\"]\n\n  port {\n    name = \"p80\"\n    port = 80\n  }\n\n  endpoint {\n    address = \"10.180.0.1\"\n  }\n}\n"
	fam := backend.IPv4
	return []step{
		{"create", desired(t, hclCase(t, "overall"), fam), 0},
		{"one endpoint", desired(t, hclCase(t, "overall", `address = "10.180.0.1"`, `address = "10.180.0.9"`), fam), 2},
		{"a service removed", desired(t, hclCase(t, "overall", svc1, ""), fam), 0},
		{"a declaration changed", desired(t, hclCase(t, "overall", svc1, "", "session_affinity_timeout    = 10800", "session_affinity_timeout    = 600"), fam), 0},
		{"destroy", empty(fam), 0},
	}
}

func TestStagesLoadOnTheirOwn(t *testing.T) {
	want := desired(t, hclCase(t, "overall"), backend.IPv4)
	k := NewFake(testPrefix)
	live, _ := k.Read(backend.IPv4, nil)
	changes := planChanges(want, live)
	stages, final := k.Transactions(backend.IPv4, changes, 4)
	if len(stages) < 2 {
		t.Fatalf("%d stages", len(stages))
	}
	for i, tx := range stages {
		if len(tx.Changes) > 4 {
			t.Errorf("stage %d creates %d objects", i, len(tx.Changes))
		}
		for _, c := range tx.Changes {
			if isBaseChain(c.Kind, c.SpecAfter) {
				t.Errorf("stage %d creates base chain %s", i, c.Chain)
			}
		}
		if err := k.Run(tx); err != nil {
			t.Fatalf("stage %d: %v\n%s", i, err, tx.Payload)
		}
	}
	if err := k.Run(final); err != nil {
		t.Fatal(err)
	}
	got, _ := k.Read(backend.IPv4, nil)
	if got.Text() != want.Text() {
		t.Fatalf("staged load reads back\n%s", got.Text())
	}
}

// TestFakeRefuses checks each refusal the Fake models, and that a refused
// script changes nothing.
func TestFakeRefuses(t *testing.T) {
	for _, bad := range refusals {
		k := NewFake(testPrefix)
		if err := k.runScript(backend.IPv4, []byte(refusalBase)); err != nil {
			t.Fatal(err)
		}
		before, _ := k.Read(backend.IPv4, nil)
		payload := "add chain ip svcnat fresh\n" + bad + "\n"
		err := k.runScript(backend.IPv4, []byte(payload))
		var te *backend.TxError
		lines := strings.Split(payload, "\n")
		if !errors.As(err, &te) || te.Line != len(lines)-1 || te.LineText != lines[len(lines)-2] {
			t.Errorf("%q: %v, want a TxError at its last line", bad, err)
			continue
		}
		if after, _ := k.Read(backend.IPv4, nil); after.Text() != before.Text() {
			t.Errorf("%q: a refused script changed the rules", bad)
		}
	}
}

// refusalBase is what the refusals are tried on.
const refusalBase = "add table ip svcnat\nadd chain ip svcnat a\nadd chain ip svcnat b\nadd set ip svcnat s { type ipv4_addr ; }\n" +
	"add map ip svcnat m { type ipv4_addr : verdict ; }\nadd rule ip svcnat a ip daddr @s jump b\n" +
	"add element ip svcnat m { 10.0.0.1 : goto b }\nadd element ip svcnat s { 10.0.0.2 }\n"

// refusals are scripts the kernel refuses (TestKernelRefusals checks
// them on nft 1.0.6), each after "add chain ip svcnat fresh".
var refusals = []string{
	"add rule ip svcnat nochain accept",
	"add rule ip svcnat a jump nochain",
	"add rule ip svcnat a ip daddr vmap { 10.0.0.1 : goto nochain }",
	"add rule ip svcnat a ip daddr @nosuchset accept",
	"add element ip svcnat nosuchset { 10.0.0.1 }",
	"add element ip svcnat m { 10.0.0.3 : goto nochain }",
	"delete element ip svcnat s { 10.0.0.9 }",
	"delete chain ip svcnat b",
	"flush chain ip svcnat a\ndelete chain ip svcnat b",
	"delete set ip svcnat s",
	"delete chain ip svcnat nochain",
	"add element ip svcnat m { 10.0.0.1 : goto a }",
}

func TestTxFailure(t *testing.T) {
	payload := []byte("add table ip svcnat\nadd chain ip svcnat a\nadd rule ip svcnat a jump nochain\n")
	stderr := "/dev/stdin:3:1-33: Error: Could not process rule: No such file or directory\nadd rule ip svcnat a jump nochain\n^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^\n"
	err := txFailure(backend.IPv4, payload, stderr, errors.New("exit status 1"))
	var te *backend.TxError
	if !errors.As(err, &te) || te.Line != 3 || te.LineText != "add rule ip svcnat a jump nochain" || te.Reason != "Could not process rule: No such file or directory" {
		t.Fatalf("%#v", err)
	}
}

// TestTxFailureNamesTheRefusedElement: elements go many to a statement,
// and a refusal names the one element nft pointed at (its columns, as
// nft 1.0.6 printed them for these two scripts), not a line of a hundred.
func TestTxFailureNamesTheRefusedElement(t *testing.T) {
	for _, c := range []struct{ line, stderr, want string }{
		{"add element ip t m { 1.1.1.1 : goto c, 1.1.1.2 : goto nochain, 1.1.1.3 : goto c }",
			"/dev/stdin:1:40-46: Error: Could not process rule: No such file or directory\n",
			"add element ip t m { …, 1.1.1.2 : goto nochain, … }"},
		{"add element ip t m { 1.1.1.1 : goto c, 1.1.1.2 : goto nochain }",
			"/dev/stdin:1:40-46: Error: Could not process rule: No such file or directory\n",
			"add element ip t m { …, 1.1.1.2 : goto nochain }"},
		{"add element ip t m { 1.1.1.2 : goto nochain, 1.1.1.3 : goto c }",
			"/dev/stdin:1:22-28: Error: Could not process rule: No such file or directory\n",
			"add element ip t m { 1.1.1.2 : goto nochain, … }"},
		{"delete element ip t m { 1.1.1.1, 9.9.9.9 }",
			"/dev/stdin:1:19-19: Error: No such file or directory\n",
			"delete element ip t m { 1.1.1.1, 9.9.9.9 }"},
	} {
		err := txFailure(backend.IPv4, []byte(c.line+"\n"), c.stderr, errors.New("exit status 1"))
		var te *backend.TxError
		if !errors.As(err, &te) || te.Line != 1 || te.LineText != c.want {
			t.Errorf("%s: %#v, want line text %q", c.line, err, c.want)
		}
	}
}

func TestParseVersion(t *testing.T) {
	v, err := parseVersion("nftables v1.0.6 (Lester Gooch #5)\n")
	if err != nil || v != [3]int{1, 0, 6} {
		t.Fatal(v, err)
	}
	if k, ok := kernelVersion("5.10.0-28-amd64"); !ok || !less(k[:], minKernel[:]) {
		t.Fatal(k)
	}
}

// TestRemoveTableOnlySvcnats: RemoveTable gives back svcnat's table and
// no other, even an empty one a state directory's record names.
func TestRemoveTableOnlySvcnats(t *testing.T) {
	k := NewFake(testPrefix)
	if err := k.runScript(backend.IPv4, []byte("add table ip nat\n")); err != nil {
		t.Fatal(err)
	}
	if ok, err := k.RemoveTable(backend.IPv4, "nat"); ok || !errors.Is(err, backend.ErrTableInUse) {
		t.Fatalf("RemoveTable of ip nat: %v %v", ok, err)
	}
	if k.state[backend.IPv4].Table("nat") == nil {
		t.Fatal("ip nat is gone")
	}
}

// TestNewRefusesAnNFTWithoutJSON: New checks nft's version and its JSON
// support in one cheap run (`nft -j --version`), and refuses an nft built
// without JSON, or older than 1.0.1, with a message that says so. The nft
// here is a shim that answers as such builds do.
func TestNewRefusesAnNFTWithoutJSON(t *testing.T) {
	for _, c := range []struct{ script, want string }{
		{`[ "$1" = -j ] && { echo "JSON support not compiled-in" >&2; exit 1; }; echo "nftables v1.0.6 (Lester Gooch #5)"`,
			"nft has no JSON support (JSON support not compiled-in)"},
		{`echo "nftables v1.0.0 (Fearless Fosdick #3)"`, "nft 1.0.0 is older than 1.0.1"},
	} {
		dir := t.TempDir()
		if err := os.WriteFile(dir+"/nft", []byte("#!/bin/sh\n"+c.script+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		t.Setenv("PATH", dir)
		_, err := New(Options{})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("New with %q: %v, want %q", c.script, err, c.want)
		}
	}
}

// TestElementsGoManyToAStatement: a new map's 250 elements are written as
// three statements of at most elementsPerStatement, the Fake takes them,
// and reads back every element.
func TestElementsGoManyToAStatement(t *testing.T) {
	var elems []backend.Rule
	for i := range 250 {
		elems = append(elems, backend.NFTRuleOf("m", fmt.Sprintf("10.0.%d.%d . 80 : goto c", i/200, i%200)))
	}
	changes := []backend.ChainChange{
		{Family: backend.IPv4, Table: "svcnat", Chain: "c", Kind: backend.KindChain, Action: backend.Create},
		{Family: backend.IPv4, Table: "svcnat", Chain: "m", Kind: backend.KindMap, Action: backend.Create,
			SpecAfter: "type ipv4_addr . inet_service : verdict ;", After: elems},
	}
	_, final := transactions(backend.IPv4, changes, backend.NoStaging)
	write(final)
	var statements int
	for _, l := range strings.Split(string(final.Payload), "\n") {
		if strings.HasPrefix(l, "add element ip svcnat m { ") {
			statements++
		}
	}
	if statements != 3 || final.Lines != 6 {
		t.Fatalf("%d element statements, %d lines, want 3 and 6:\n%.600s", statements, final.Lines, final.Payload)
	}
	k := NewFake(testPrefix)
	if err := k.runScript(backend.IPv4, final.Payload); err != nil {
		t.Fatal(err)
	}
	got, ok, err := k.ReadChain(backend.IPv4, "svcnat", "m")
	backend.SortElements(elems) // as a set lists them
	if err != nil || !ok || len(got) != len(elems) {
		t.Fatalf("read back %d elements (%v %v), want %d", len(got), ok, err, len(elems))
	}
	for i := range got {
		if got[i].Text() != elems[i].Text() {
			t.Fatalf("element %d read back %q, want %q", i, got[i].Text(), elems[i].Text())
		}
	}
}
