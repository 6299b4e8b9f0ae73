// Command svcnat-bench measures svcnat at scale, as `make bench` runs it:
// N services with E endpoints each (internal/bench), written as one file
// per namespace, applied with the svcnat binary into fresh network
// namespaces on each backend, and compared with what the tools underneath
// cost on their own: HCL's parser, and each backend's bare load and read
// (iptables-restore and iptables-save; nft -f and nft list table).
// It prints one table; docs/PERFORMANCE.md explains it.
//
// It needs root (network namespaces), makes only namespaces of its own,
// and removes them, also when interrupted.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"

	"github.com/svcnat/svcnat/internal/applier"
	"github.com/svcnat/svcnat/internal/bench"
	"github.com/svcnat/svcnat/internal/config"
	"github.com/svcnat/svcnat/internal/kernel"
	"github.com/svcnat/svcnat/internal/kernel/backend"
	"github.com/svcnat/svcnat/internal/planner"
)

func main() {
	n := flag.Int("n", 10000, "services")
	e := flag.Int("e", 5, "endpoints per service")
	backends := flag.String("backends", "nft,legacy,nftables", "backends to measure, comma-separated: "+kernel.NameChoices+", not auto")
	svcnat := flag.String("svcnat", "bin/svcnat", "the svcnat binary to measure")
	gen := flag.String("gen", "", "only write the configuration into this directory")
	change := flag.Int("change", -1, "with -gen: add one endpoint to this service")
	parseOnly := flag.String("parse", "", "only parse the *.hcl files of this directory with HCL's parser (the floor svcnat-bench measures in a process of its own)")
	measure := flag.Bool("measure", false, "only run the command after the flags and report its peak memory (see exec)")
	verdictsOnly := flag.Bool("verdicts", false, "only time health verdicts through a session: NETNS STATE-DIR RUNTIME-DIR CONFIG-DIR BACKEND [CPU-PROFILE] (see verdicts)")
	flag.Parse()
	if *measure {
		os.Exit(measureChild(flag.Args()))
	}
	if *verdictsOnly {
		a := flag.Args()
		if len(a) < 5 {
			fatal(fmt.Errorf("-verdicts takes NETNS STATE-DIR RUNTIME-DIR CONFIG-DIR BACKEND [CPU-PROFILE]"))
		}
		va := verdictArgs{netns: a[0], state: a[1], runtime: a[2], cfg: a[3], backend: backend.Name(a[4])}
		if len(a) > 5 {
			va.profile = a[5]
		}
		if err := verdicts(va); err != nil {
			fatal(err)
		}
		return
	}
	spec := bench.Spec{Services: *n, Endpoints: *e}
	if *parseOnly != "" {
		if err := bareParse(*parseOnly); err != nil {
			fatal(err)
		}
		return
	}
	if *gen != "" {
		if err := generate(*gen, spec, *change); err != nil {
			fatal(err)
		}
		return
	}
	names, err := parseBackends(*backends)
	if err != nil {
		fatal(err)
	}
	if os.Geteuid() != 0 {
		fatal(fmt.Errorf("needs root, to make network namespaces"))
	}
	bin, err := filepath.Abs(*svcnat)
	if err != nil {
		fatal(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	b := &bencher{ctx: ctx, bin: bin, spec: spec}
	defer b.cleanup()
	if err := b.run(names); err != nil {
		b.cleanup()
		fatal(err)
	}
}

// parseBackends reads -backends: each backend by its name or old alias,
// once, as its canonical name. Auto is refused: each measurement is of one
// backend the run names.
func parseBackends(list string) ([]backend.Name, error) {
	var out []backend.Name
	seen := map[backend.Name]bool{}
	for _, s := range strings.Split(list, ",") {
		n, err := kernel.ParseName(strings.TrimSpace(s))
		if err == nil && (n == "" || n == kernel.Auto) {
			err = fmt.Errorf("backend %q: name one, not auto", s)
		}
		if err != nil {
			return nil, fmt.Errorf("-backends: %w (want %s)", err, kernel.NameChoices)
		}
		if seen[n] {
			return nil, fmt.Errorf("-backends: %s named twice", n)
		}
		seen[n] = true
		out = append(out, n)
	}
	return out, nil
}

// The iptables backends, whose goals differ (goals): their canonical
// names, which the bench takes from their old aliases too.
var (
	iptablesNFT    = backend.Name("nft").Canonical()
	iptablesLegacy = backend.Name("legacy").Canonical()
)

// tools are the bare commands the floor and the read run for backend be
// (an iptables backend by its canonical name, whose programs it names:
// iptables-nft-restore), in a namespace, for table (nftables' owned table).
func tools(be backend.Name, table string) (load, read []string) {
	if be == kernel.NFTables {
		return []string{"nft", "-f", "-"}, []string{"nft", "list", "table", "ip", table}
	}
	return []string{string(be) + "-restore", "--noflush"}, []string{string(be) + "-save"}
}

func fatal(err error) {
	fmt.Fprintf(os.Stderr, "svcnat-bench: %v\n", err)
	os.Exit(1)
}

func generate(dir string, s bench.Spec, change int) error {
	if err := bench.Write(dir, s); err != nil {
		return err
	}
	if change < 0 {
		return nil
	}
	name, body := bench.Change(s, change)
	return os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644)
}

// measurement is one timed run: how long, and the peak memory of the
// process measured (0 when not measured).
type measurement struct {
	took  time.Duration
	rss   int64 // KiB
	lines int   // lines written, for an apply
	note  string
}

type bencher struct {
	ctx  context.Context
	bin  string
	spec bench.Spec
	dir  string // the work directory
	nss  []string
	seq  int
}

func (b *bencher) run(backends []backend.Name) error {
	dir, err := os.MkdirTemp("", "svcnat-bench-")
	if err != nil {
		return err
	}
	b.dir = dir
	cfg := filepath.Join(dir, "cfg")
	if err := bench.Write(cfg, b.spec); err != nil {
		return err
	}
	fmt.Printf("svcnat-bench: %d services x %d endpoints in %d files, %s\n\n", b.spec.Services, b.spec.Endpoints,
		(b.spec.Services+bench.PerFile-1)/bench.PerFile, describeHost())
	self, err := os.Executable()
	if err != nil {
		return err
	}
	parse, err := b.exec("", self, "-parse", cfg)
	if err != nil {
		return err
	}
	validate, err := b.svcnat("", "validate", "-c", cfg)
	if err != nil {
		return err
	}
	render, err := b.svcnat("", "render", "-c", cfg, "--node", bench.Node)
	if err != nil {
		return err
	}
	c, diags := config.Load(cfg)
	if diags.HasErrors() {
		return diags
	}
	res := map[backend.Name]map[string]measurement{}
	for _, be := range backends {
		m, err := b.backend(be, c, cfg)
		if err != nil {
			return fmt.Errorf("%s: %w", be, err)
		}
		m["parse"], m["validate"], m["render"] = parse, validate, render
		res[be] = m
	}
	b.print(backends, res)
	return nil
}

// backend measures one backend on configuration c (loaded from cfg), each
// step in a namespace of its own where it must start empty.
func (b *bencher) backend(be backend.Name, c *config.Config, cfg string) (map[string]measurement, error) {
	m := map[string]measurement{}
	load, read := tools(be, backend.NFTTable(c.Settings.ChainPrefix))
	var err error
	fmt.Fprintf(os.Stderr, "svcnat-bench: %s: the floor (bare %s)\n", be, load[0])
	if m["floor"], err = b.floor(be, c, load); err != nil {
		return nil, err
	}
	ns, err := b.netns()
	if err != nil {
		return nil, err
	}
	state := filepath.Join(b.dir, "state-"+string(be))
	work := filepath.Join(b.dir, "cfg-"+string(be))
	if err := copyDir(cfg, work); err != nil {
		return nil, err
	}
	// The namespace lock and owner record go with the run's own files,
	// not into the host's /run/svcnat.
	common := []string{"--netns", ns, "--state-dir", state, "--runtime-dir", filepath.Join(b.dir, "run"), "-c", work, "--node", bench.Node, "--backend", string(be), "--no-color"}
	fmt.Fprintf(os.Stderr, "svcnat-bench: %s: svcnat apply into an empty namespace\n", be)
	if m["apply"], err = b.svcnat("", append([]string{"apply", "-auto-approve", "--lock-timeout", "10m"}, common...)...); err != nil {
		return nil, err
	}
	fmt.Fprintf(os.Stderr, "svcnat-bench: %s: bare %s, plan, one-endpoint change\n", be, strings.Join(read, " "))
	if m["save"], err = b.exec("", "ip", append([]string{"netns", "exec", ns}, read...)...); err != nil {
		return nil, err
	}
	if m["plan"], err = b.svcnat("No changes.", append([]string{"plan"}, common...)...); err != nil {
		return nil, err
	}
	if err := generate(work, b.spec, b.spec.Services/2); err != nil {
		return nil, err
	}
	if m["change"], err = b.svcnat("Apply complete!", append([]string{"apply", "-auto-approve"}, common...)...); err != nil {
		return nil, err
	}
	if _, err := b.svcnat("No changes.", append([]string{"plan"}, common...)...); err != nil {
		return nil, fmt.Errorf("after the change: %w", err)
	}
	fmt.Fprintf(os.Stderr, "svcnat-bench: %s: health verdicts through a session\n", be)
	if err := b.verdictRow(m, verdictArgs{netns: ns, state: state, runtime: filepath.Join(b.dir, "run"), cfg: work, backend: be}); err != nil {
		return nil, err
	}
	if _, err := b.svcnat("No changes.", append([]string{"plan"}, common...)...); err != nil {
		return nil, fmt.Errorf("after the verdicts: %w", err)
	}
	return m, nil
}

// floor loads the rendered rules into an empty namespace with the
// backend's own loader alone (load: iptables-restore, nft -f), as
// svcnat's apply writes them (on iptables-nft and nftables: staged
// batches, then one transaction), without svcnat around it.
func (b *bencher) floor(be backend.Name, c *config.Config, load []string) (measurement, error) {
	res, err := kernel.Pure(be).Render(c, backend.RenderOptions{Node: bench.Node, RandomFully: true})
	if err != nil {
		return measurement{}, err
	}
	p := planner.New(c.Settings.ChainPrefix, be, res.Rulesets, nil)
	ns, err := b.netns()
	if err != nil {
		return measurement{}, err
	}
	// The payloads are written and batched as backend be writes them,
	// which it does without a kernel.
	k := kernel.Offline(be)
	var payloads [][]byte
	for _, f := range backend.Families {
		stages, final := applier.Transactions(k, p, f, k.Limits().Batch)
		for _, tx := range stages {
			k.Write(tx)
			payloads = append(payloads, tx.Payload)
		}
		if f == backend.IPv4 { // the generated configuration is IPv4 only
			k.Write(final)
			payloads = append(payloads, final.Payload)
		}
	}
	start := time.Now()
	for _, pl := range payloads {
		cmd := exec.CommandContext(b.ctx, "ip", append([]string{"netns", "exec", ns}, load...)...)
		cmd.Stdin = bytes.NewReader(pl)
		if out, err := cmd.CombinedOutput(); err != nil {
			return measurement{}, fmt.Errorf("%s: %w: %s", strings.Join(load, " "), err, out)
		}
	}
	return measurement{took: time.Since(start), note: plural(len(payloads), "transaction")}, nil
}

// bareParse parses the files with HCL's parser and nothing else, one at a
// time as svcnat does.
func bareParse(dir string) error {
	names, err := filepath.Glob(filepath.Join(dir, "*.hcl"))
	if err != nil {
		return err
	}
	sort.Strings(names)
	for _, n := range names {
		src, err := os.ReadFile(n)
		if err != nil {
			return err
		}
		if _, diags := hclsyntax.ParseConfig(src, n, hcl.InitialPos); diags.HasErrors() {
			return diags
		}
	}
	return nil
}

var (
	linesWritten = regexp.MustCompile(`\(([0-9]+) lines? written\)`)
	maxrss       = regexp.MustCompile(`(?m)^svcnat-bench: maxrss ([0-9]+) KiB$`)
)

// measureChild runs args, passing its output through, and reports its
// peak memory on stderr.
func measureChild(args []string) int {
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, "svcnat-bench -measure: no command")
		return 2
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	err := cmd.Run()
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		fmt.Fprintf(os.Stderr, "svcnat-bench: maxrss %d KiB\n", ru.Maxrss)
	}
	if err != nil {
		return 1
	}
	return 0
}

// svcnat runs the binary; want, when set, must be in its output.
func (b *bencher) svcnat(want string, args ...string) (measurement, error) {
	m, err := b.exec(want, b.bin, args...)
	return m, err
}

// exec runs a command, timing it and reading its peak memory. It runs it
// through svcnat-bench -measure: a child of this process starts as a copy
// of it, hundreds of MiB here, which its peak memory would report.
func (b *bencher) exec(want, name string, args ...string) (measurement, error) {
	var out string
	m, err := b.execOut(&out, name, args...)
	if err == nil && want != "" && !strings.Contains(out, want) {
		return measurement{}, fmt.Errorf("%s %s: output lacks %q:\n%s", filepath.Base(name), strings.Join(args, " "), want, tail(out))
	}
	return m, err
}

// execOut is exec, keeping the command's output in output.
func (b *bencher) execOut(output *string, name string, args ...string) (measurement, error) {
	var out, errb bytes.Buffer
	self, err := os.Executable()
	if err != nil {
		return measurement{}, err
	}
	cmd := exec.CommandContext(b.ctx, self, append([]string{"-measure", "--", name}, args...)...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	start := time.Now()
	err = cmd.Run()
	took := time.Since(start)
	if err != nil {
		return measurement{}, fmt.Errorf("%s %s: %w\n%s%s", filepath.Base(name), strings.Join(args, " "), err, tail(out.String()), errb.String())
	}
	*output = out.String()
	m := measurement{took: took}
	if r := maxrss.FindStringSubmatch(errb.String()); r != nil && name != "ip" {
		m.rss, _ = strconv.ParseInt(r[1], 10, 64)
	}
	if l := linesWritten.FindStringSubmatch(out.String()); l != nil {
		m.lines, _ = strconv.Atoi(l[1])
	}
	return m, nil
}

func tail(s string) string {
	if len(s) > 2000 {
		return "..." + s[len(s)-2000:]
	}
	return s
}

// netns makes an empty namespace of the bench's own.
func (b *bencher) netns() (string, error) {
	b.seq++
	name := fmt.Sprintf("svcnat-bench-%d-%d", os.Getpid(), b.seq)
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		return "", fmt.Errorf("ip netns add %s: %w: %s", name, err, out)
	}
	b.nss = append(b.nss, name)
	return name, nil
}

func (b *bencher) cleanup() {
	for _, ns := range b.nss {
		exec.Command("ip", "netns", "del", ns).Run()
	}
	b.nss = nil
	if b.dir != "" {
		os.RemoveAll(b.dir)
		b.dir = ""
	}
}

func copyDir(from, to string) error {
	if err := os.MkdirAll(to, 0o755); err != nil {
		return err
	}
	names, err := filepath.Glob(filepath.Join(from, "*"))
	if err != nil {
		return err
	}
	for _, n := range names {
		data, err := os.ReadFile(n)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(to, filepath.Base(n)), data, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// describeHost names the machine, the kernel and the versions of
// iptables and nft.
func describeHost() string {
	var parts []string
	if out, err := exec.Command("uname", "-r").Output(); err == nil {
		parts = append(parts, "kernel "+strings.TrimSpace(string(out)))
	}
	for _, v := range [][]string{{"iptables-nft", "-V"}, {"nft", "--version"}} {
		if out, err := exec.Command(v[0], v[1:]...).Output(); err == nil {
			parts = append(parts, strings.TrimSpace(string(out)))
		}
	}
	if out, err := exec.Command("nproc").Output(); err == nil {
		parts = append(parts, strings.TrimSpace(string(out))+" CPUs")
	}
	parts = append(parts, time.Now().Format("2006-01-02"))
	return strings.Join(parts, ", ")
}

// print writes the table and the goals, measured.
func (b *bencher) print(backends []backend.Name, res map[backend.Name]map[string]measurement) {
	rows := []struct{ key, what string }{
		{"parse", "bare HCL parse of the files (hclsyntax)"},
		{"validate", "svcnat validate"},
		{"render", "svcnat render"},
		{"floor", "bare load of the rendered rules (iptables-restore; nft -f)"},
		{"apply", "svcnat apply into an empty namespace"},
		{"save", "bare read of svcnat's rules (iptables-save; nft list table)"},
		{"plan", "no-change svcnat plan"},
		{"change", "one-endpoint change (svcnat apply)"},
		{"session", "session start in reconcile (NewSession)"},
		{"verdict", "health verdict to verified kernel (Session.Update), median"},
		{"verdict-p90", "health verdict to verified kernel, 90th percentile"},
		{"verdict-chained", "health verdict to verified kernel, NodePort service, median"},
		{"verdict-chained-p90", "health verdict to verified kernel, NodePort service, 90th percentile"},
	}
	fmt.Printf("| %s |", "")
	for _, be := range backends {
		fmt.Printf(" %s |", be)
	}
	fmt.Printf("\n|---|")
	for range backends {
		fmt.Printf("---|")
	}
	fmt.Println()
	for _, r := range rows {
		fmt.Printf("| %s |", r.what)
		for _, be := range backends {
			m := res[be][r.key]
			cell := fmt.Sprintf("%.2f s", m.took.Seconds())
			if m.note != "" {
				cell += " (" + m.note + ")"
			}
			fmt.Printf(" %s |", cell)
		}
		fmt.Println()
	}
	fmt.Printf("| lines written for the change |")
	for _, be := range backends {
		fmt.Printf(" %d |", res[be]["change"].lines)
	}
	fmt.Printf("\n| peak memory of plan / apply / change |")
	for _, be := range backends {
		fmt.Printf(" %s MiB |", peaks(res[be]))
	}
	fmt.Printf("\n| lines written for a verdict / peak memory of the process holding the session |")
	for _, be := range backends {
		fmt.Printf(" %d / %d MiB |", res[be]["verdict"].lines, res[be]["verdict"].rss>>10)
	}
	fmt.Println()
	fmt.Println()
	for _, be := range backends {
		for _, g := range append(goals(be, res), verdictGoals(be, res[be])...) {
			fmt.Println(g)
		}
	}
}

// peaks are the peak memory of m's plan, apply and change, as the table
// and the memory goal print them.
func peaks(m map[string]measurement) string {
	return fmt.Sprintf("%d / %d / %d", m["plan"].rss>>10, m["apply"].rss>>10, m["change"].rss>>10)
}

// goal is one of docs/PERFORMANCE.md's goals, measured: a value (most are
// a ratio of two timings) and the most it may be.
type goal struct {
	backend backend.Name
	what    string
	value   float64
	shown   string // value as printed, when not %.2f
	max     float64
	below   bool   // value must be under max: "fewer than 20 lines"
	absent  string // what was not measured in this run, so that the goal is neither met nor not
}

// String is the goal's line: the value, the goal, and whether it is met,
// so that nobody has to compare the numbers by eye.
func (g goal) String() string {
	op := "<="
	if g.below {
		op = "<"
	}
	if g.absent != "" {
		return fmt.Sprintf("%s: %s (goal %s %g): not measured, %s", g.backend, g.what, op, g.max, g.absent)
	}
	shown := g.shown
	if shown == "" {
		shown = fmt.Sprintf("%.2f", g.value)
	}
	verdict := "met"
	if g.value > g.max || g.below && g.value == g.max {
		verdict = "not met"
	}
	return fmt.Sprintf("%s: %s = %s (goal %s %g): %s", g.backend, g.what, shown, op, g.max, verdict)
}

// goals are backend be's goals, from the run's measurements res (every
// backend's: nftables' apply is held to iptables-nft's). A one-endpoint
// change is held to a no-change plan on iptables-nft and nftables; on
// legacy, whose restore rewrites the whole table, to a plan plus 1.5
// floors.
func goals(be backend.Name, res map[backend.Name]map[string]measurement) []goal {
	m := res[be]
	sec := func(k string) float64 { return m[k].took.Seconds() }
	var gs []goal
	if be == kernel.NFTables {
		g := goal{backend: be, what: "apply / " + string(iptablesNFT) + " apply", max: 0.5}
		if o, ok := res[iptablesNFT]; ok {
			g.value = sec("apply") / o["apply"].took.Seconds()
		} else {
			g.absent = "run " + string(iptablesNFT) + " too"
		}
		gs = append(gs, g)
	}
	gs = append(gs,
		goal{backend: be, what: "apply / (parse + floor)", value: sec("apply") / (sec("parse") + sec("floor")), max: 1.25},
		goal{backend: be, what: "plan / (parse + save)", value: sec("plan") / (sec("parse") + sec("save")), max: 1.25})
	maxLines := 50.0
	switch be {
	case kernel.NFTables:
		// Reconcile takes a configuration edit by a full pass, which the
		// one-endpoint change by the command line measures (its
		// incremental session takes health verdicts only).
		gs = append(gs, goal{backend: be, what: "change / plan", value: sec("change") / sec("plan"), max: 1.1},
			goal{backend: be, what: "configuration edit to verified kernel, by a full pass as reconcile takes it (s)",
				value: sec("change"), shown: fmt.Sprintf("%.2f", sec("change")), max: 0.1})
		maxLines = 20
	case iptablesNFT:
		gs = append(gs, goal{backend: be, what: "change / plan", value: sec("change") / sec("plan"), max: 1.5})
	default:
		gs = append(gs, goal{backend: be, what: "change / (plan + 1.5 floor)", value: sec("change") / (sec("plan") + 1.5*sec("floor")), max: 1})
	}
	most := max(m["plan"].rss, m["apply"].rss, m["change"].rss) >> 10
	return append(gs,
		goal{backend: be, what: "lines written for the change", value: float64(m["change"].lines),
			shown: strconv.Itoa(m["change"].lines), max: maxLines, below: true},
		goal{backend: be, what: "peak memory of plan / apply / change (MiB)", value: float64(most),
			shown: peaks(m), max: 256, below: true})
}

func plural(n int, thing string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, thing)
	}
	return fmt.Sprintf("%d %ss", n, thing)
}
