package main

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"runtime/pprof"
	"slices"
	"strconv"
	"time"

	"github.com/svcnat/svcnat/internal/bench"
	"github.com/svcnat/svcnat/internal/cli"
	"github.com/svcnat/svcnat/internal/config"
	"github.com/svcnat/svcnat/internal/engine"
	"github.com/svcnat/svcnat/internal/health"
	"github.com/svcnat/svcnat/internal/kernel"
	"github.com/svcnat/svcnat/internal/kernel/backend"
)

// verdictRounds is how many times the verdicts row takes one endpoint
// out and puts it back: 2 × verdictRounds verdicts, of which the median
// and the 90th percentile are printed.
const verdictRounds = 12

// verdictArgs are what the parent passes the -verdicts child: the
// namespace, state and runtime directories, configuration and backend of
// a run that applied the configuration.
type verdictArgs struct {
	netns, state, runtime, cfg string
	backend                    backend.Name
	profile                    string // a CPU profile of the verdicts, when set
}

// verdicts is the -verdicts child: what reconcile will do with a health
// verdict, in one process as the daemon holds it: a full plan (empty: the
// configuration is applied), a session started from it, then one
// endpoint of one service taken out by a health verdict (health.Overlay)
// and put back, each timed from the verdict to the rules verified in the
// kernel (Session.Update), for a plain cluster-IP service and then for a
// NodePort one. It prints one line per verdict and a summary the parent
// reads.
func verdicts(a verdictArgs) error {
	h, err := engine.OpenHost(engine.HostOptions{NetNS: a.netns, Backend: a.backend, Prefix: config.DefaultChainPrefix, RuntimeDir: a.runtime})
	if err != nil {
		return err
	}
	e := &engine.Engine{Host: *h, StateDir: a.state, LockTimeout: time.Minute, Origin: engine.OriginReconcile}
	cfg, diags := config.Load(a.cfg)
	if diags.HasErrors() {
		return diags
	}
	cli.LimitMemory(cfg) // as reconcile does once it has loaded the configuration
	// Two services of the generated mix with a health check (the check
	// itself changes no rule): a plain cluster-IP one, which on nftables
	// has no chain of its own, and the next NodePort one, which has (its
	// verdict rewrites its service chain's pick).
	i := len(cfg.Services) / 3
	j := i + 1
	for j < len(cfg.Services) && cfg.Services[j].Type != "NodePort" {
		j++
	}
	if j == len(cfg.Services) {
		return fmt.Errorf("no NodePort service after service %d", i)
	}
	base := *cfg
	base.Services = slices.Clone(cfg.Services)
	for _, k := range []int{i, j} {
		checked := *cfg.Services[k]
		checked.HealthCheck = &config.HealthCheck{Protocol: config.CheckTCP, Interval: 2 * time.Second, Timeout: time.Second, Rise: 2, Fall: 3}
		base.Services[k] = &checked
	}
	start := time.Now()
	p, err := e.Plan(&base, bench.Node)
	if err != nil {
		return err
	}
	if !p.Empty() {
		return fmt.Errorf("the plan before the verdicts has %d changes", len(p.Changes))
	}
	planned := time.Since(start)
	start = time.Now()
	s, err := e.NewSession(p, &base, bench.Node)
	if err != nil {
		return err
	}
	began := time.Since(start)
	p = nil
	if a.profile != "" {
		f, err := os.Create(a.profile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	series := func(svc *config.Service) (median, p90 time.Duration, lines int, err error) {
		down := health.Overlay(&base, &health.View{Endpoints: map[health.Key]health.Status{
			{Service: svc.Name, Endpoint: svc.Endpoints[0].Address}: {Up: false, Checked: true},
		}})
		var took []time.Duration
		for r := range 2 * verdictRounds {
			next := &base
			if r%2 == 0 {
				next = down
			}
			start := time.Now()
			res, err := s.Update(context.Background(), next, []string{svc.Name})
			if err != nil {
				return 0, 0, 0, fmt.Errorf("verdict %d on %s: %w", r+1, svc.Name, err)
			}
			took = append(took, time.Since(start))
			lines = max(lines, res.Lines)
			fmt.Printf("svcnat-bench: verdict %d on %s: %.3f s (%d lines, commit and verification %.3f s)\n", r+1, svc.Name, took[r].Seconds(), res.Lines, res.Took.Seconds())
		}
		slices.Sort(took)
		return took[len(took)/2], took[len(took)*9/10], lines, nil
	}
	median, p90, lines, err := series(base.Services[i])
	if err != nil {
		return err
	}
	cmedian, cp90, clines, err := series(base.Services[j])
	if err != nil {
		return err
	}
	fmt.Printf("svcnat-bench: verdicts median %d p90 %d lines %d plan %d session %d chained median %d p90 %d lines %d\n",
		median.Microseconds(), p90.Microseconds(), lines, planned.Microseconds(), began.Microseconds(),
		cmedian.Microseconds(), cp90.Microseconds(), clines)
	return nil
}

var verdictSummary = regexp.MustCompile(`svcnat-bench: verdicts median ([0-9]+) p90 ([0-9]+) lines ([0-9]+) plan ([0-9]+) session ([0-9]+) chained median ([0-9]+) p90 ([0-9]+) lines ([0-9]+)`)

// verdictRow runs the -verdicts child on a namespace svcnat applied the
// configuration to, and puts its measurements in m: "verdict" (the
// median, with the child's peak memory), "verdict-p90", "session" (the
// session's start), "verdict-chained" and "verdict-chained-p90" (of the
// NodePort service).
func (b *bencher) verdictRow(m map[string]measurement, a verdictArgs) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	args := []string{"-verdicts", a.netns, a.state, a.runtime, a.cfg, string(a.backend)}
	if p := os.Getenv("SVCNAT_BENCH_PROFILE"); p != "" {
		args = append(args, p+"-"+string(a.backend))
	}
	var out string
	meas, err := b.execOut(&out, self, args...)
	if err != nil {
		return err
	}
	r := verdictSummary.FindStringSubmatch(out)
	if r == nil {
		return fmt.Errorf("the verdicts printed no summary:\n%s", tail(out))
	}
	us := func(i int) time.Duration {
		v, _ := strconv.ParseInt(r[i], 10, 64)
		return time.Duration(v) * time.Microsecond
	}
	lines, _ := strconv.Atoi(r[3])
	m["verdict"] = measurement{took: us(1), rss: meas.rss, lines: lines}
	m["verdict-p90"] = measurement{took: us(2)}
	m["session"] = measurement{took: us(5), note: fmt.Sprintf("after a %.2f s plan", us(4).Seconds())}
	clines, _ := strconv.Atoi(r[8])
	m["verdict-chained"] = measurement{took: us(6), lines: clines}
	m["verdict-chained-p90"] = measurement{took: us(7)}
	return nil
}

// verdictGoals are the goals of a health verdict reaching the kernel in
// reconcile (issue 25, and issue 27 for nftables): on iptables-nft at most
// 1 s (stretch 300 ms), on legacy, whose restore rewrites the whole table,
// at most its bare load plus 0.5 s, on nftables at most 100 ms; and the
// process holding the session under 256 MiB.
func verdictGoals(be backend.Name, m map[string]measurement) []goal {
	v := m["verdict"].took.Seconds()
	var gs []goal
	switch be {
	case kernel.NFTables:
		c := m["verdict-chained"].took.Seconds()
		gs = append(gs, goal{backend: be, what: "health verdict to verified kernel, median (s)", value: v, shown: fmt.Sprintf("%.3f", v), max: 0.1},
			goal{backend: be, what: "health verdict to verified kernel, NodePort service, median (s)", value: c, shown: fmt.Sprintf("%.3f", c), max: 0.1})
	case iptablesNFT:
		gs = append(gs, goal{backend: be, what: "health verdict to verified kernel, median (s)", value: v, shown: fmt.Sprintf("%.3f", v), max: 1},
			goal{backend: be, what: "health verdict to verified kernel, median (s), stretch", value: v, shown: fmt.Sprintf("%.3f", v), max: 0.3})
	default:
		gs = append(gs, goal{backend: be, what: "health verdict - bare load, median (s)", value: v - m["floor"].took.Seconds(),
			shown: fmt.Sprintf("%.3f", v-m["floor"].took.Seconds()), max: 0.5})
	}
	return append(gs, goal{backend: be, what: "peak memory of the process holding the session (MiB)",
		value: float64(m["verdict"].rss >> 10), shown: strconv.FormatInt(m["verdict"].rss>>10, 10), max: 256, below: true})
}
