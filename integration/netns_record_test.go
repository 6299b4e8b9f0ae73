package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/svcnat/svcnat/internal/testns"
)

// runIn runs svcnat without --netns inside ns (ip netns exec), with the
// state directory and configuration given.
func runIn(t *testing.T, ns *testns.NS, stateDir, config string, args ...string) Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	full := append([]string{"netns", "exec", ns.Name, svcnatBin, "--no-color", "--backend", "nft", "--state-dir", stateDir, "-c", config}, args...)
	cmd := exec.CommandContext(ctx, "ip", full...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := Result{Stdout: out.String(), Stderr: errb.String()}
	if ee := (*exec.ExitError)(nil); errors.As(err, &ee) {
		r.Code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return r
}

// A state directory records the namespace svcnat ran in by its ip netns
// name, whether --netns named it or svcnat runs in it (ip netns exec):
// they are the same namespace, and another one is refused either way.
func TestNamespaceRecordedByIdentity(t *testing.T) {
	a, b := testns.New(t), testns.New(t)
	config := writeConfig(t, map[string]string{"services.hcl": applyIPv4Config})
	stateDir := t.TempDir()
	if r := runIn(t, a, stateDir, config, "apply", "-auto-approve"); r.Code != 0 {
		t.Fatalf("ip netns exec %s svcnat apply: %s", a.Name, r)
	}
	data, err := os.ReadFile(filepath.Join(stateDir, "state.json"))
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		Namespace *struct{ Name string } `json:"namespace"`
	}
	if err := json.Unmarshal(data, &st); err != nil {
		t.Fatal(err)
	}
	if st.Namespace == nil || st.Namespace.Name != a.Name {
		t.Fatalf("ip netns exec %s svcnat apply recorded the namespace %+v", a.Name, st.Namespace)
	}
	// --netns A, from here or from inside A, is that namespace.
	sv := &Svcnat{NetNS: a.Name, StateDir: stateDir, Config: config, Backend: "nft"}
	sv.MustRun(t, 0, "plan", "--detailed-exitcode")
	if r := runIn(t, a, stateDir, config, "--netns", a.Name, "plan", "--detailed-exitcode"); r.Code != 0 {
		t.Fatalf("ip netns exec %s svcnat --netns %[1]s plan: %s", a.Name, r)
	}
	// Inside B, without --netns: another namespace, refused.
	r := runIn(t, b, stateDir, config, "apply", "-auto-approve")
	if r.Code != 1 || !strings.Contains(r.Stderr, "records the rules of network namespace "+a.Name+" (iptables-nft backend), and this apply works in network namespace "+b.Name+"; nothing was changed") {
		t.Fatalf("ip netns exec %s svcnat apply on %s's state directory: %s", b.Name, a.Name, r)
	}
	if save := b.MustExec(t, "", "iptables-nft-save"); strings.Contains(save, "SVCNAT") {
		t.Fatalf("a refused apply wrote in %s:\n%s", b.Name, save)
	}
	if r := runIn(t, a, stateDir, config, "destroy", "-auto-approve"); r.Code != 0 {
		t.Fatalf("ip netns exec %s svcnat destroy: %s", a.Name, r)
	}
}
