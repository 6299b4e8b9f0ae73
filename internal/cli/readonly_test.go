package cli

import (
	"strings"
	"testing"
)

// Every command says whether it changes anything and what it makes of
// --json (commandTraits): none is read-only, or not, by being left out of
// a list.
func TestEveryCommandHasItsTraits(t *testing.T) {
	app := NewApp(Env{})
	for _, cmd := range app.Commands {
		tr, ok := commandTraits[cmd.Name]
		if !ok || tr.json == 0 || tr.json == jsonRefused && tr.jsonHint == "" {
			t.Errorf("command %s: commandTraits does not describe it: %+v", cmd.Name, tr)
		}
	}
	for _, name := range []string{"history", "show", "plan", "trace"} {
		if commandTraits[name].changes {
			t.Errorf("%s is read-only, but commandTraits says it changes something", name)
		}
	}
}

// A read-only command drops "; nothing was changed" where it ends a
// sentence, and only there.
func TestReadOnlyMessage(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"chain_prefix changed from SVCNAT to KUBE; nothing was changed", "chain_prefix changed from SVCNAT to KUBE"},
		{"rules svcnat does not own jump into chains this apply would delete; nothing was changed:\n  rule",
			"rules svcnat does not own jump into chains this apply would delete:\n  rule"},
		{"lost; nothing was changed, but the record stays", "lost; nothing was changed, but the record stays"},
		{"svcnat apply would refuse this plan: a; nothing was changed", "svcnat apply would refuse this plan: a"},
	} {
		if got := readOnlyMessage(c.in); got != c.want {
			t.Errorf("readOnlyMessage(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// plan --json's refusal message is what plan's stderr says: without
// "nothing was changed", which plan never needs to say.
func TestPlanJSONRefusalSaysWhatStderrSays(t *testing.T) {
	h := newFakeHost(t)
	h.must(ExitOK, "apply", "-auto-approve", "--netns", "svcnat-a")
	out, errs, code := h.run("plan", "--json")
	ref, _ := planDoc(t, out)["refusal"].(map[string]any)
	msg, _ := ref["message"].(string)
	if code != ExitError || msg == "" || strings.Contains(msg, "nothing was changed") ||
		!strings.Contains(errs, "svcnat: error: svcnat apply would refuse this plan: "+msg+"\n") {
		t.Errorf("plan --json: exit %d, refusal %v\n%s", code, ref, errs)
	}
	_, errs, _ = h.run("history")
	if strings.Contains(errs, "nothing was changed") {
		t.Errorf("history says nothing was changed:\n%s", errs)
	}
}
