package integration

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/svcnat/svcnat/internal/kernel/backend"
	"github.com/svcnat/svcnat/internal/kernel/iptables/rules"
)

// A foreign rule that jumps into an owned chain pins it: svcnat never edits
// rules it does not own, so destroy must refuse, name the rule and change
// nothing, and go through once the operator removed it.
func TestForeignJumpPinsOwnedChain(t *testing.T) {
	for _, b := range applyBackends {
		t.Run(b, func(t *testing.T) {
			t.Parallel()
			l := newApplyLab(t, b, applyBaseConfig)
			l.must(0, "apply", "-auto-approve")
			sep := regexp.MustCompile(`SVCNAT-SEP-[A-Z0-9]{16}`).FindString(applySave(t, l.ns, b, backend.IPv4))
			if sep == "" {
				t.Fatalf("%s no SEP chain after apply", l.where())
			}
			ipt := "iptables-" + b
			l.ns.MustExec(t, "", ipt, "-t", "nat", "-N", "MYCHAIN")
			l.ns.MustExec(t, "", ipt, "-t", "nat", "-A", "MYCHAIN", "-s", "10.9.9.9", "-j", sep)
			before := applySave(t, l.ns, b, backend.IPv4)
			r := l.must(1, "destroy", "-auto-approve")
			if !strings.Contains(r.Stderr, "MYCHAIN") || !strings.Contains(r.Stderr, sep) {
				t.Fatalf("%s destroy with MYCHAIN jumping to %s: want a refusal naming both: %s", l.where(), sep, r)
			}
			if after := applySave(t, l.ns, b, backend.IPv4); applyNormalize(after, false) != applyNormalize(before, false) {
				t.Fatalf("%s a refused destroy changed rules:\n%s", l.where(), applyDiff(before, after))
			}
			l.ns.MustExec(t, "", ipt, "-t", "nat", "-F", "MYCHAIN")
			l.must(0, "destroy", "-auto-approve")
			if strings.Contains(applySave(t, l.ns, b, backend.IPv4), "SVCNAT-") {
				t.Fatalf("%s SVCNAT chains left after destroy", l.where())
			}
		})
	}
}

// Changing chain_prefix would leave the old chains live and out of reach;
// apply refuses until destroy (which uses the recorded prefix) removed them.
func TestPrefixChangeNeedsDestroy(t *testing.T) {
	l := newApplyLab(t, "nft", applyBaseConfig)
	l.must(0, "apply", "-auto-approve")
	l.setConfig(strings.Replace(applyBaseConfig, "settings {", "settings {\n  chain_prefix = \"SN\"", 1))
	if r := l.must(1, "apply", "-auto-approve"); !strings.Contains(r.Stderr, "chain_prefix changed from SVCNAT to SN") {
		t.Fatalf("%s apply under a new prefix: want a refusal: %s", l.where(), r)
	}
	l.must(0, "destroy", "-auto-approve")
	if strings.Contains(applySave(t, l.ns, "nft", backend.IPv4), "SVCNAT-") {
		t.Fatalf("%s destroy left SVCNAT chains", l.where())
	}
	l.must(0, "apply", "-auto-approve")
	if save := applySave(t, l.ns, "nft", backend.IPv4); !strings.Contains(save, ":SN-SERVICES") || strings.Contains(save, "SVCNAT-") {
		t.Fatalf("%s after destroy and apply: want only SN chains:\n%s", l.where(), save)
	}
}

// An apply killed after its commit but before it wrote the state leaves
// the rules new and the record old; the next apply must notice and record,
// so that show reports no drift and rollback goes where it should.
func TestKilledBeforeRecordingConverges(t *testing.T) {
	l := newApplyLab(t, "nft", applyBaseConfig)
	l.must(0, "apply", "-auto-approve")
	saved := t.TempDir()
	copyDir(t, l.sv.StateDir, saved)
	before := ownedChains(t, l)
	l.setConfig(strings.Replace(applyBaseConfig, `    address = "10.64.3.2"`, `    address = "10.64.4.2"`, 1))
	l.must(0, "apply", "-auto-approve")
	// The kill: the state directory as it was before that apply recorded,
	// with the note of the chains it creates, written before its first
	// restore (without it, the new chains would be no one's).
	var created []string
	for _, c := range ownedChains(t, l) {
		if !slices.Contains(before, c) {
			created = append(created, c)
		}
	}
	if len(created) == 0 {
		t.Fatalf("%s the second apply created no chain", l.where())
	}
	os.RemoveAll(l.sv.StateDir)
	copyDir(t, saved, l.sv.StateDir)
	note, _ := json.Marshal(map[string][]string{"chains": created})
	if err := os.WriteFile(filepath.Join(l.sv.StateDir, "applying.json"), note, 0o600); err != nil {
		t.Fatal(err)
	}
	r := l.must(0, "apply", "-auto-approve")
	if !strings.Contains(r.Stdout, "recorded") {
		t.Fatalf("%s apply after a kill before recording: want it to record the rules: %s", l.where(), r)
	}
	if r := l.must(0, "show"); !strings.Contains(r.Stdout, "No drift") {
		t.Fatalf("%s show after recovery reports drift: %s", l.where(), r)
	}
	if r := l.must(0, "plan", "--detailed-exitcode"); !strings.Contains(r.Stdout, "No changes") {
		t.Fatalf("%s plan after recovery: %s", l.where(), r)
	}
}

// ownedChains names the live owned chains of both families as svcnat
// does ("IPv4 nat SVCNAT-SVC-X").
func ownedChains(t *testing.T, l *applyLab) []string {
	t.Helper()
	var out []string
	for _, fam := range []backend.Family{backend.IPv4, backend.IPv6} {
		rs, err := rules.ParseSave(fam, strings.NewReader(l.save(fam)))
		if err != nil {
			t.Fatal(err)
		}
		for _, tb := range rs.Owned(applyPrefix).Tables {
			for _, c := range tb.Chains {
				if !c.Builtin() {
					out = append(out, fmt.Sprintf("%s %s %s", fam, tb.Name, c.Name))
				}
			}
		}
	}
	return out
}

func copyDir(t *testing.T, from, to string) {
	t.Helper()
	if err := os.MkdirAll(to, 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("cp", "-a", filepath.Clean(from)+"/.", to).CombinedOutput(); err != nil {
		t.Fatalf("cp -a %s %s: %v: %s", from, to, err, out)
	}
}
