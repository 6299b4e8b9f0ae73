package metrics

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// The README's /metrics example names every series a fresh daemon serves,
// and no series svcnat does not have.
func TestREADMEMetricsExample(t *testing.T) {
	data, err := os.ReadFile("../../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	text := string(data)
	const start = "$ curl -s 127.0.0.1:9823/metrics | grep ^svcnat_ | grep -v bucket\n"
	i := strings.Index(text, start)
	if i < 0 {
		t.Fatal("README has no /metrics example")
	}
	example := text[i+len(start):]
	example = example[:strings.Index(example, "```")]
	name := regexp.MustCompile(`^(svcnat_[a-z_]+?)(_sum|_count)?[{ ]`)
	inREADME := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(example), "\n") {
		m := name.FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("README /metrics line %q is no series", line)
		}
		inREADME[m[1]] = true
	}
	m := New()
	m.ownedChains.WithLabelValues("IPv4", "nat").Set(1)
	m.ownedRules.WithLabelValues("IPv4", "nat").Set(1)
	m.applies.WithLabelValues("apply", "success").Inc()
	m.duration.WithLabelValues("apply").Observe(1)
	fams, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	served := map[string]bool{}
	for _, f := range fams {
		served[f.GetName()] = true
		if !inREADME[f.GetName()] {
			t.Errorf("the README's /metrics example lacks %s", f.GetName())
		}
	}
	for n := range inREADME {
		if !served[n] {
			t.Errorf("the README's /metrics example shows %s, which svcnat does not serve", n)
		}
	}
}
