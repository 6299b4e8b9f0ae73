package planner

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/svcnat/svcnat/internal/config"
	"github.com/svcnat/svcnat/internal/kernel"
	"github.com/svcnat/svcnat/internal/kernel/iptables/describe"
	"github.com/svcnat/svcnat/internal/kernel/iptables/render"
)

const webHCL = `service "default/web" {
  type        = "NodePort"
  cluster_ips = ["10.32.0.10"]
  port {
    port      = 80
    node_port = 30080
  }
  endpoint {
    address = "10.64.1.2"
  }
}
`

// savedWeb is the saved plan of webHCL on a host with no rules, decoded.
func savedWeb(t *testing.T) planFile {
	t.Helper()
	cfg, diags := config.Parse(map[string][]byte{"web.hcl": []byte(webHCL)})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	res, err := render.Render(cfg, render.Options{Node: "n1", RandomFully: true})
	if err != nil {
		t.Fatal(err)
	}
	p := New("SVCNAT", "nft", res.Rulesets, nil)
	p.ChainService = res.ChainService
	data, err := MarshalPlan(p, "sha256:cfg")
	if err != nil {
		t.Fatal(err)
	}
	var pf planFile
	if err := json.Unmarshal(data, &pf); err != nil {
		t.Fatal(err)
	}
	return pf
}

// encode writes pf as plan -out does, its digest recomputed when reseal:
// as whoever edits a plan file and knows how can.
func encode(t *testing.T, pf planFile, reseal bool) []byte {
	t.Helper()
	if reseal {
		var err error
		if pf.Digest, err = planDigest(pf); err != nil {
			t.Fatal(err)
		}
	}
	data, err := json.Marshal(pf)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TestSavedPlanRefusesRulesSvcnatNeverWrites: every kind of rule svcnat
// could not have written, added to a plan file whose digest was made to
// match, is refused as the file is read, with the rule (or chain, or
// table) named: a plan file is JSON holding each family's rules as one
// string, so its line numbers would name nothing.
func TestSavedPlanRefusesRulesSvcnatNeverWrites(t *testing.T) {
	for _, tc := range []struct {
		name, old, new, want string
	}{
		{"a jump from INPUT into a chain of its own",
			"*filter\n", "*filter\n:SVCNAT-EVIL - [0:0]\n-A INPUT -j SVCNAT-EVIL\n-A SVCNAT-EVIL -p tcp -m tcp --dport 22 -j DROP\n",
			`the plan's desired IPv4 rule "-A INPUT -j SVCNAT-EVIL" (table filter) is not one svcnat writes: in a built-in chain svcnat writes only its jumps into its fixed chains`},
		{"the same chain reached from an owned chain",
			"COMMIT\n*nat\n", ":SVCNAT-EVIL - [0:0]\n-A SVCNAT-SERVICES -j SVCNAT-EVIL\n-A SVCNAT-EVIL -p tcp -m tcp --dport 22 -j DROP\nCOMMIT\n*nat\n",
			"the plan's desired IPv4 chain SVCNAT-EVIL (table filter) is not one svcnat writes: no kind of chain svcnat writes is named so"},
		{"a raw table NOTRACK chain",
			"*filter\n", "*raw\n:SVCNAT-NOTRACK - [0:0]\n-A PREROUTING -j SVCNAT-NOTRACK\n-A SVCNAT-NOTRACK -j CT --notrack\nCOMMIT\n*filter\n",
			"the plan's desired IPv4 rules hold table raw: svcnat writes only the nat and filter tables"},
		{"an accept of everything in a built-in chain",
			"*filter\n", "*filter\n-A INPUT -j ACCEPT\n",
			`rule "-A INPUT -j ACCEPT" (table filter)`},
		{"a foreign chain",
			"*filter\n", "*filter\n:EVIL - [0:0]\n",
			"chain EVIL (table filter) is not one svcnat writes: svcnat writes only chains named SVCNAT-…"},
		{"a built-in chain the table lacks",
			"*nat\n", "*nat\n-A FORWARD -j ACCEPT\n",
			"chain FORWARD (table nat) is not one svcnat writes: the table has no such built-in chain"},
		{"an endpoint chain in the filter table",
			"*filter\n", "*filter\n:SVCNAT-SEP-AAAAAAAAAAAAAAAA - [0:0]\n",
			"svcnat writes SEP chains only in table nat"},
		{"a per-service chain not named by a hash",
			"*nat\n", "*nat\n:SVCNAT-SEP-EVIL - [0:0]\n",
			"a SEP chain is named by a 16-character hash"},
		{"a LOG target",
			"COMMIT\n*nat\n", "-A SVCNAT-SERVICES -j LOG\nCOMMIT\n*nat\n",
			"svcnat jumps only to its own chains of the table and to ACCEPT, DROP, REJECT"},
		{"a jump to another program's chain",
			"COMMIT\n*nat\n", "-A SVCNAT-SERVICES -j DOCKER-USER\nCOMMIT\n*nat\n",
			`rule "-A SVCNAT-SERVICES -j DOCKER-USER"`},
		{"a goto",
			"COMMIT\n*nat\n", "-A SVCNAT-SERVICES -g SVCNAT-FORWARD\nCOMMIT\n*nat\n",
			"svcnat writes no goto"},
		{"a match svcnat never writes",
			"COMMIT\n*nat\n", "-A SVCNAT-SERVICES -m owner --uid-owner 0 -j ACCEPT\nCOMMIT\n*nat\n",
			"svcnat writes no -m owner match"},
		{"a protocol svcnat never writes",
			"COMMIT\n*nat\n", "-A SVCNAT-SERVICES -p icmp -j DROP\nCOMMIT\n*nat\n",
			"svcnat writes no -p icmp rule"},
		{"a mark other programs may read as accept",
			":SVCNAT-MARK-MASQ - [0:0]\n", ":SVCNAT-MARK-MASQ - [0:0]\n-A SVCNAT-MARK-MASQ -j MARK --set-xmark 0x10000/0xffffffff\n",
			"svcnat writes MARK in MARK-MASQ chains only as: -j MARK --set-xmark <mark>/<mark>"},
		{"a DNAT to a range",
			":SVCNAT-MARK-MASQ - [0:0]\n", ":SVCNAT-MARK-MASQ - [0:0]\n-A SVCNAT-SERVICES -j DNAT --to-destination 192.0.2.1-192.0.2.9\n",
			"svcnat writes DNAT only in SEP chains"},
		{"a nat target in the filter table",
			"COMMIT\n*nat\n", "-A SVCNAT-SERVICES -j DNAT --to-destination 192.0.2.66\nCOMMIT\n*nat\n",
			"svcnat jumps only to its own chains of the table and to ACCEPT, DROP, REJECT"},
		// Verdicts only as render writes them, in the chains it writes
		// them in: an ACCEPT anywhere would wave traffic past the host's
		// firewall.
		{"an ACCEPT of everything forwarded",
			"COMMIT\n*nat\n", "-A SVCNAT-FORWARD -j ACCEPT\nCOMMIT\n*nat\n",
			`rule "-A SVCNAT-FORWARD -j ACCEPT" (table filter) is not one svcnat writes: svcnat writes ACCEPT in FORWARD chains only as`},
		{"an ACCEPT of any mark",
			"COMMIT\n*nat\n", "-A SVCNAT-FORWARD -m mark --mark 0x0/0x0 -j ACCEPT\nCOMMIT\n*nat\n",
			"svcnat writes ACCEPT in FORWARD chains only as"},
		{"an ACCEPT of another program's mark",
			"COMMIT\n*nat\n", "-A SVCNAT-FORWARD -m comment --comment \"svcnat forwarding rules\" -m mark --mark 0x10000/0x10000 -j ACCEPT\nCOMMIT\n*nat\n",
			"svcnat writes one masquerade mark in every rule: 0x10000 here, 0x4000 before"},
		{"an ACCEPT of a service port",
			"COMMIT\n*nat\n", "-A SVCNAT-SERVICES -d 10.32.0.10/32 -p tcp -m tcp --dport 22 -j ACCEPT\nCOMMIT\n*nat\n",
			"svcnat writes ACCEPT only in FORWARD and NODEPORTS chains"},
		{"an ACCEPT of every node port",
			"COMMIT\n*nat\n", "-A SVCNAT-NODEPORTS -j ACCEPT\nCOMMIT\n*nat\n",
			"svcnat writes ACCEPT in NODEPORTS chains only as"},
		{"a DNAT outside an endpoint chain",
			":SVCNAT-MARK-MASQ - [0:0]\n", ":SVCNAT-MARK-MASQ - [0:0]\n-A SVCNAT-SERVICES -p tcp -m tcp --dport 22 -j DNAT --to-destination 192.0.2.66:22\n",
			"svcnat writes DNAT only in SEP chains"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pf := savedWeb(t)
			if !strings.Contains(pf.Desired["ipv4"], tc.old) {
				t.Fatalf("no %q in the desired rules:\n%s", tc.old, pf.Desired["ipv4"])
			}
			pf.Desired["ipv4"] = strings.Replace(pf.Desired["ipv4"], tc.old, tc.new, 1)
			_, _, err := UnmarshalPlan(encode(t, pf, true), kernel.Pure)
			var de *describe.DesiredRuleError
			if !errors.As(err, &de) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want a *DesiredRuleError with %q", err, tc.want)
			}
		})
	}
}

// TestSavedPlanRefusesAnEditedFile: a plan file is applied only as it was
// made. An edit the structural check cannot see (a DNAT to an address of
// the editor's choice) is caught by the digest, unless the editor also
// recomputes it; and a plan made before the digest existed cannot be told
// from an edited one, so it is made again.
func TestSavedPlanRefusesAnEditedFile(t *testing.T) {
	pf := savedWeb(t)
	if _, _, err := UnmarshalPlan(encode(t, pf, false), kernel.Pure); err != nil {
		t.Fatalf("the plan as made: %v", err)
	}
	const dnat = "--to-destination 10.64.1.2:80"
	if !strings.Contains(pf.Desired["ipv4"], dnat) {
		t.Fatalf("no %q in the desired rules", dnat)
	}
	edits := map[string]func(*planFile){
		"a DNAT to another address": func(pf *planFile) {
			pf.Desired["ipv4"] = strings.Replace(pf.Desired["ipv4"], dnat, "--to-destination 192.0.2.66:80", 1)
		},
		"the configuration it came from": func(pf *planFile) { pf.ConfigDigest = "sha256:other" },
		"the service of a chain":         func(pf *planFile) { pf.ChainServices["SVCNAT-EVIL"] = "default/web" },
	}
	for name, edit := range edits {
		t.Run(name, func(t *testing.T) {
			pf := savedWeb(t)
			edit(&pf)
			_, _, err := UnmarshalPlan(encode(t, pf, false), kernel.Pure)
			if err == nil || err.Error() != "the plan file was changed after it was made: it does not match the digest recorded in it" {
				t.Fatalf("err = %v", err)
			}
		})
	}
	t.Run("no digest", func(t *testing.T) {
		pf := savedWeb(t)
		pf.FormatVersion, pf.Digest = 1, ""
		_, _, err := UnmarshalPlan(encode(t, pf, false), kernel.Pure)
		if err == nil || err.Error() != "the plan was made by an earlier svcnat, which recorded no digest of it" {
			t.Fatalf("err = %v", err)
		}
	})
}

// A plan file naming a backend this svcnat does not have is refused, even
// resealed, rather than read as another backend's rules.
func TestSavedPlanOfAnUnknownBackendIsRefused(t *testing.T) {
	pf := savedWeb(t)
	if _, _, err := UnmarshalPlan(encode(t, pf, true), kernel.Pure); err != nil {
		t.Fatalf("the plan as saved: %v", err)
	}
	pf.Backend = "ebpf"
	_, _, err := UnmarshalPlan(encode(t, pf, true), kernel.Pure)
	if err == nil || !strings.Contains(err.Error(), `the plan was made on the "ebpf" backend, which this svcnat does not have`) {
		t.Fatalf("got %v", err)
	}
}
