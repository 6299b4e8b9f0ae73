package config

import (
	"fmt"
	"os"
	"strings"
	"testing"
)

// giantService writes one service with the given port blocks and n
// endpoint blocks, each endpoint block starting a line of its own, and
// returns the source and the line each endpoint block starts on.
func giantService(ports, n int) (string, []int) {
	var b strings.Builder
	line := 1
	write := func(s string) {
		b.WriteString(s)
		line += strings.Count(s, "\n")
	}
	write("service \"ns/giant\" {\n  cluster_ips = [\"10.96.0.1\"]\n")
	for p := 0; p < ports; p++ {
		write(fmt.Sprintf("  port {\n    name = \"p%d\"\n    port = %d\n  }\n", p, 80+p))
	}
	lines := make([]int, n)
	for e := 0; e < n; e++ {
		lines[e] = line
		v := e + 1
		write(fmt.Sprintf("  endpoint {\n    address = \"10.%d.%d.%d\"\n  }\n", 64+v>>16, v>>8&255, v&255))
	}
	write("}\n")
	return b.String(), lines
}

// TestServiceEndpointLimit checks the bound on a service's endpoint rules:
// a service at MaxServiceEndpoints is valid, one endpoint more is refused
// once, at the first endpoint block over the limit; with several ports the
// limit counts each endpoint once per port.
func TestServiceEndpointLimit(t *testing.T) {
	for _, ports := range []int{1, 2, 3} {
		atLimit := MaxServiceEndpoints / ports
		t.Run(fmt.Sprintf("%d ports", ports), func(t *testing.T) {
			src, _ := giantService(ports, atLimit)
			if _, diags := Parse(map[string][]byte{"giant.hcl": []byte(src)}); diags.HasErrors() {
				t.Fatalf("%d endpoints on %d ports (at the limit): %s", atLimit, ports, diags)
			}

			src, lines := giantService(ports, atLimit+3)
			_, diags := Parse(map[string][]byte{"giant.hcl": []byte(src)})
			if len(diags) != 1 {
				t.Fatalf("%d endpoints on %d ports: want one diagnostic, got %d: %s", atLimit+3, ports, len(diags), diags)
			}
			d := diags[0]
			if d.Summary != "too many endpoints" {
				t.Errorf("summary %q, want %q", d.Summary, "too many endpoints")
			}
			if d.Subject == nil || d.Subject.Filename != "giant.hcl" || d.Subject.Start.Line != lines[atLimit] || d.Subject.Start.Column != 3 {
				t.Fatalf("diagnostic at %v, want giant.hcl:%d:3 (endpoint %d, the first over the limit)", d.Subject, lines[atLimit], atLimit+1)
			}
			for _, s := range []string{`"ns/giant"`, fmt.Sprint(atLimit + 3), fmt.Sprint(MaxServiceEndpoints), "Split the service"} {
				if !strings.Contains(d.Detail, s) {
					t.Errorf("detail %q does not mention %s", d.Detail, s)
				}
			}
		})
	}
}

// TestServiceEndpointLimitDocumented keeps the README's figure true.
func TestServiceEndpointLimitDocumented(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	n := MaxServiceEndpoints
	want := fmt.Sprintf("A service may have at most %d,%03d endpoints", n/1000, n%1000)
	if !strings.Contains(string(readme), want) {
		t.Errorf("README does not say %q", want)
	}
}
