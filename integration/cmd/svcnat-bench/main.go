// Command svcnat-bench measures svcnat at scale, as `make bench` runs it:
// N services with E endpoints each (internal/bench), written as one file
// per namespace, applied with the svcnat binary into fresh network
// namespaces on each backend, and compared with what the tools underneath
// cost on their own: HCL's parser, iptables-restore and iptables-save.
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
	backends := flag.String("backends", "nft,legacy", "backends to measure, comma-separated")
	svcnat := flag.String("svcnat", "bin/svcnat", "the svcnat binary to measure")
	gen := flag.String("gen", "", "only write the configuration into this directory")
	change := flag.Int("change", -1, "with -gen: add one endpoint to this service")
	parseOnly := flag.String("parse", "", "only parse the *.hcl files of this directory with HCL's parser (the floor svcnat-bench measures in a process of its own)")
	measure := flag.Bool("measure", false, "only run the command after the flags and report its peak memory (see exec)")
	flag.Parse()
	if *measure {
		os.Exit(measureChild(flag.Args()))
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
	if err := b.run(strings.Split(*backends, ",")); err != nil {
		b.cleanup()
		fatal(err)
	}
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

func (b *bencher) run(backends []string) error {
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
	res := map[string]map[string]measurement{}
	for _, be := range backends {
		m, err := b.backend(be, cfg)
		if err != nil {
			return fmt.Errorf("%s: %w", be, err)
		}
		m["parse"], m["validate"], m["render"] = parse, validate, render
		res[be] = m
	}
	b.print(backends, res)
	return nil
}

// backend measures one backend, each step in a namespace of its own where
// it must start empty.
func (b *bencher) backend(be, cfg string) (map[string]measurement, error) {
	m := map[string]measurement{}
	var err error
	fmt.Fprintf(os.Stderr, "svcnat-bench: %s: the restore floor\n", be)
	if m["floor"], err = b.floor(be, cfg); err != nil {
		return nil, err
	}
	ns, err := b.netns()
	if err != nil {
		return nil, err
	}
	state := filepath.Join(b.dir, "state-"+be)
	work := filepath.Join(b.dir, "cfg-"+be)
	if err := copyDir(cfg, work); err != nil {
		return nil, err
	}
	// The namespace lock and owner record go with the run's own files,
	// not into the host's /run/svcnat.
	common := []string{"--netns", ns, "--state-dir", state, "--runtime-dir", filepath.Join(b.dir, "run"), "-c", work, "--node", bench.Node, "--backend", be, "--no-color"}
	fmt.Fprintf(os.Stderr, "svcnat-bench: %s: svcnat apply into an empty namespace\n", be)
	if m["apply"], err = b.svcnat("", append([]string{"apply", "-auto-approve", "--lock-timeout", "10m"}, common...)...); err != nil {
		return nil, err
	}
	fmt.Fprintf(os.Stderr, "svcnat-bench: %s: iptables-save, plan, one-endpoint change\n", be)
	if m["save"], err = b.exec("", "ip", "netns", "exec", ns, "iptables-"+be+"-save"); err != nil {
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
	return m, nil
}

// floor loads the rendered rules into an empty namespace with
// iptables-restore alone, as svcnat's apply writes them (on nft: staged
// batches, then one transaction), without svcnat around it.
func (b *bencher) floor(be, cfg string) (measurement, error) {
	c, diags := config.Load(cfg)
	if diags.HasErrors() {
		return measurement{}, diags
	}
	res, err := kernel.Pure(backend.Name(be)).Render(c, backend.RenderOptions{Node: bench.Node, RandomFully: true})
	if err != nil {
		return measurement{}, err
	}
	p := planner.New(c.Settings.ChainPrefix, backend.Name(be), res.Rulesets, nil)
	ns, err := b.netns()
	if err != nil {
		return measurement{}, err
	}
	// The payloads are written and batched as the iptables backend be
	// writes them, which that backend does without a kernel.
	k := kernel.Offline(backend.Name(be))
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
		cmd := exec.CommandContext(b.ctx, "ip", "netns", "exec", ns, "iptables-"+be+"-restore", "--noflush")
		cmd.Stdin = bytes.NewReader(pl)
		if out, err := cmd.CombinedOutput(); err != nil {
			return measurement{}, fmt.Errorf("iptables-%s-restore: %w: %s", be, err, out)
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
	if want != "" && !strings.Contains(out.String(), want) {
		return measurement{}, fmt.Errorf("%s %s: output lacks %q:\n%s", filepath.Base(name), strings.Join(args, " "), want, tail(out.String()))
	}
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

// describeHost names the machine, the kernel and the iptables version.
func describeHost() string {
	var parts []string
	if out, err := exec.Command("uname", "-r").Output(); err == nil {
		parts = append(parts, "kernel "+strings.TrimSpace(string(out)))
	}
	if out, err := exec.Command("iptables-nft", "-V").Output(); err == nil {
		parts = append(parts, strings.TrimSpace(string(out)))
	}
	if out, err := exec.Command("nproc").Output(); err == nil {
		parts = append(parts, strings.TrimSpace(string(out))+" CPUs")
	}
	parts = append(parts, time.Now().Format("2006-01-02"))
	return strings.Join(parts, ", ")
}

// print writes the table and the goals' ratios.
func (b *bencher) print(backends []string, res map[string]map[string]measurement) {
	rows := []struct{ key, what string }{
		{"parse", "bare HCL parse of the files (hclsyntax)"},
		{"validate", "svcnat validate"},
		{"render", "svcnat render"},
		{"floor", "bare iptables-restore of the rendered rules"},
		{"apply", "svcnat apply into an empty namespace"},
		{"save", "bare iptables-save of svcnat's rules"},
		{"plan", "no-change svcnat plan"},
		{"change", "one-endpoint change (svcnat apply)"},
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
		m := res[be]
		fmt.Printf(" %d / %d / %d MiB |", m["plan"].rss>>10, m["apply"].rss>>10, m["change"].rss>>10)
	}
	fmt.Println()
	fmt.Println()
	for _, be := range backends {
		m := res[be]
		for _, g := range goals(be, func(k string) float64 { return m[k].took.Seconds() }) {
			fmt.Println(g)
		}
	}
}

// goal is one of docs/PERFORMANCE.md's goals, measured: a ratio of two
// timings and the most it may be.
type goal struct {
	backend, ratio string
	value, max     float64
}

// String is the goal's line: the ratio, the goal, and whether it is met,
// so that nobody has to compare the numbers by eye.
func (g goal) String() string {
	verdict := "met"
	if g.value > g.max {
		verdict = "not met"
	}
	return fmt.Sprintf("%s: %s = %.2f (goal <= %g): %s", g.backend, g.ratio, g.value, g.max, verdict)
}

// goals are backend be's goals, from its timings in seconds by row key.
// A one-endpoint change is held to a no-change plan on nft; on legacy,
// whose restore rewrites the whole table, to a plan plus 1.5 floors.
func goals(be string, sec func(string) float64) []goal {
	gs := []goal{
		{be, "apply / (parse + floor)", sec("apply") / (sec("parse") + sec("floor")), 1.25},
		{be, "plan / (parse + save)", sec("plan") / (sec("parse") + sec("save")), 1.25},
	}
	if be == "nft" {
		return append(gs, goal{be, "change / plan", sec("change") / sec("plan"), 1.5})
	}
	return append(gs, goal{be, "change / (plan + 1.5 floor)", sec("change") / (sec("plan") + 1.5*sec("floor")), 1})
}

func plural(n int, thing string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, thing)
	}
	return fmt.Sprintf("%d %ss", n, thing)
}
