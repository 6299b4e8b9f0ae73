package bench

import (
	"fmt"
	"os"
	"strconv"
	"testing"
)

// Default is the size of the Go benchmarks' configuration: 10,000
// services of 5 endpoints each, make bench's default N and E.
var Default = Spec{Services: 10000, Endpoints: 5}

// The variables make bench passes its N and E in, to the Go benchmarks as
// to svcnat-bench.
const (
	EnvServices  = "SVCNAT_BENCH_N"
	EnvEndpoints = "SVCNAT_BENCH_E"
)

// FromEnv is the size a benchmark generates: Default, with what
// EnvServices and EnvEndpoints say where set. A benchmark reports it on
// its line (services, endpoints/service), since its name cannot follow.
// A value that is not a positive number fails tb: measuring another size
// than asked would be worse than measuring none.
func FromEnv(tb testing.TB) Spec {
	tb.Helper()
	s, err := specFromEnv(os.Getenv)
	if err != nil {
		tb.Fatal(err)
	}
	if b, ok := tb.(*testing.B); ok {
		// Reported as the benchmark ends: b.ResetTimer, which benchmarks
		// call after their setup, deletes the metrics reported before.
		b.Cleanup(func() {
			b.ReportMetric(float64(s.Services), "services")
			b.ReportMetric(float64(s.Endpoints), "endpoints/service")
		})
	}
	return s
}

func specFromEnv(getenv func(string) string) (Spec, error) {
	s := Default
	for _, v := range []struct {
		name string
		to   *int
	}{{EnvServices, &s.Services}, {EnvEndpoints, &s.Endpoints}} {
		raw := getenv(v.name)
		if raw == "" {
			continue
		}
		n, err := strconv.Atoi(raw)
		if err != nil || n < 1 {
			return s, fmt.Errorf("%s=%q: want a positive number", v.name, raw)
		}
		*v.to = n
	}
	return s, nil
}
