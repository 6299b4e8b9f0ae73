package kernel_test

import (
	"bytes"
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
)

// TestOneSeam keeps the house's one rule for kernels: only a backend's own
// packages (iptables, nftables) and this package, which chooses the backend
// for a command, import a backend. Everything above (planner, applier,
// engine, the daemon side, trace's results, cli) talks to the seam's types
// in internal/kernel/backend, so that a second backend plugs in beside it.
// Tests may import the fake; only what is built into svcnat counts.
func TestOneSeam(t *testing.T) {
	const mod = "github.com/svcnat/svcnat/"
	const chooser = mod + "internal/kernel"
	backends := []string{mod + "internal/kernel/iptables", mod + "internal/kernel/nftables"}
	inBackend := func(pkg string) bool {
		for _, b := range backends {
			if pkg == b || strings.HasPrefix(pkg, b+"/") {
				return true
			}
		}
		return false
	}
	out, err := exec.Command("go", "list", "-json=ImportPath,Imports", "../../...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	dec := json.NewDecoder(bytes.NewReader(out))
	seen := 0
	for dec.More() {
		var p struct {
			ImportPath string
			Imports    []string
		}
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		seen++
		if p.ImportPath == chooser || inBackend(p.ImportPath) {
			continue
		}
		for _, imp := range p.Imports {
			if inBackend(imp) {
				t.Errorf("%s imports %s: only %s chooses a backend", strings.TrimPrefix(p.ImportPath, mod), strings.TrimPrefix(imp, mod), strings.TrimPrefix(chooser, mod))
			}
		}
	}
	if seen < 10 {
		t.Fatalf("go list listed %d packages; want the whole module", seen)
	}
}
