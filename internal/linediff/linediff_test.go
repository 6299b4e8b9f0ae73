package linediff

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// Any diff Unified writes, patch applies to give the new text:
// random files, random edits, blank lines and missing last newlines.
func TestUnifiedDiffPatchRoundTrip(t *testing.T) {
	if _, err := exec.LookPath("patch"); err != nil {
		t.Skip("no patch")
	}
	dir := t.TempDir()
	rnd := rand.New(rand.NewPCG(1, 2))
	text := func(lines []string, nl bool) string {
		s := strings.Join(lines, "\n")
		if nl && s != "" {
			s += "\n"
		}
		return s
	}
	for i := range 40 {
		var a []string
		for range rnd.IntN(30) {
			a = append(a, []string{"", "x", "y", "port {", "}", fmt.Sprint(rnd.IntN(5))}[rnd.IntN(6)])
		}
		b := slices.Clone(a)
		for range rnd.IntN(6) {
			switch j := rnd.IntN(len(b) + 1); {
			case rnd.IntN(2) == 0 || j == len(b):
				b = slices.Insert(b, j, fmt.Sprint("new ", rnd.IntN(3)))
			default:
				b = slices.Delete(b, j, j+1)
			}
		}
		before, after := text(a, rnd.IntN(4) > 0), text(b, rnd.IntN(4) > 0)
		if before == after {
			continue
		}
		diff := Unified("f.hcl", before, after)
		f := filepath.Join(dir, "f.hcl")
		if err := os.WriteFile(f, []byte(before), 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command("patch", "-p1", "-s", "-F0", "-i", "-")
		cmd.Dir = dir
		cmd.Stdin = strings.NewReader(diff)
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("case %d: patch: %v\n%s\nbefore %q\nafter %q\n%s", i, err, b, before, after, diff)
		}
		got, err := os.ReadFile(f)
		if err != nil || string(got) != after {
			t.Fatalf("case %d: patched %q, want %q\n%s", i, got, after, diff)
		}
	}
}
