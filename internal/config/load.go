package config

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"golang.org/x/sync/semaphore"
)

// FileNames returns the files a configuration path denotes, in the order
// they are read: path itself when it is a file, else every *.hcl file
// directly in the directory, in name order. Dot files are skipped (editor
// lock files such as .#nginx.hcl end in .hcl too). svcnat fmt uses this so
// that it formats exactly the files that validate reads.
//
// Every *.hcl entry that is not a regular file once symbolic links are
// followed (a dangling link, a link loop, a directory, a named pipe) is an
// error naming it, not skipped: skipping would remove its services without
// a word. The names of the readable files are returned with the errors.
func FileNames(path string) ([]string, hcl.Diagnostics) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, hcl.Diagnostics{ioError("cannot read configuration", err)}
	}
	if !fi.IsDir() {
		if d := checkMode(path, fi); d != nil {
			return nil, hcl.Diagnostics{d}
		}
		return []string{path}, nil
	}
	entries, err := os.ReadDir(path)
	if err != nil {
		return nil, hcl.Diagnostics{ioError("cannot read configuration directory", err)}
	}
	var names []string
	var diags hcl.Diagnostics
	for _, e := range entries { // ReadDir sorts by name
		n := e.Name()
		if strings.HasPrefix(n, ".") || !strings.HasSuffix(n, ".hcl") {
			continue
		}
		full := filepath.Join(path, n)
		if d := checkEntry(full); d != nil {
			diags = append(diags, d)
			continue
		}
		names = append(names, full)
	}
	if len(names) == 0 && len(diags) == 0 {
		return nil, hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "no configuration files",
			Detail:   "Directory " + path + " holds no *.hcl files; point -c at a .hcl file or at a directory of them.",
		}}
	}
	return names, diags
}

func ioError(summary string, err error) *hcl.Diagnostic {
	return &hcl.Diagnostic{Severity: hcl.DiagError, Summary: summary, Detail: err.Error() + "."}
}

// Load reads the configuration at path (a .hcl file, or a directory whose
// *.hcl files are read in name order), decodes it and validates it.
//
// Load never blocks and never crashes on what it reads: it reads regular
// files only, opened without waiting, at most MaxFileSize bytes each, and
// refuses nesting deeper than MaxNesting before parsing; each refusal is a
// diagnostic naming the file (and the place, for nesting). The daemon
// relies on this to keep its canary and repair going whatever is dropped
// into its configuration directory.
//
// Load always returns a non-nil *Config whose Files holds every file it
// could read, so that WriteDiagnostics can show source snippets even when
// loading fails. When diags has errors, Files is the only field set: a
// configuration with errors is never half used.
func Load(path string) (*Config, hcl.Diagnostics) {
	names, diags := FileNames(path)
	srcs := make(map[string][]byte, len(names))
	for _, n := range names {
		b, d := ReadFile(n)
		if d != nil {
			diags = append(diags, d)
			continue
		}
		srcs[n] = b
	}
	cfg, pdiags := Parse(srcs)
	diags = append(diags, pdiags...)
	if diags.HasErrors() {
		cfg = &Config{Files: cfg.Files}
	}
	return cfg, diags
}

// Parse decodes and validates the files given by name and source. Files
// are read in name order, which decides nothing but the order of
// diagnostics and which of two duplicates is reported. Like Load, it
// always returns a non-nil *Config with Files set, and only Files when
// diags has errors. Every error of the run is reported, sorted by position.
//
// Files are parsed a few at a time (parseEach) and their syntax trees
// dropped once their blocks are decoded, so memory follows the largest
// files, not the whole configuration: a file's tree takes about 25 times
// its size. Config.Files
// then holds each file's bytes; only when there are diagnostics are the
// files parsed again whole, for the snippets that show them.
func Parse(files map[string][]byte) (*Config, hcl.Diagnostics) {
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)

	cfg := &Config{Files: make(map[string]*hcl.File, len(files))}
	d := &decoder{}
	var settingsBlocks []*rawSettings
	var decls []*svcDecl
	order := make(map[string]int, len(names))
	unparsed := map[string]bool{} // refused by guard: never parsed, not even for snippets
	parseEach(names, files, func(i int, p parsed) {
		n := names[i]
		order[n] = i
		if g := p.guard; g != nil {
			d.diags = append(d.diags, g)
			if g.Subject != nil {
				cfg.Files[n] = &hcl.File{Bytes: files[n]}
				unparsed[n] = true
			}
			return
		}
		d.diags = append(d.diags, p.diags...)
		if p.file != nil {
			cfg.Files[n] = &hcl.File{Bytes: files[n]}
		}
		if p.raw == nil {
			return
		}
		settingsBlocks = append(settingsBlocks, p.raw.Settings...)
		for _, rs := range p.raw.Services {
			decls = append(decls, d.service(rs))
		}
	})
	settings, nodePortsOK := d.settings(settingsBlocks)
	for _, check := range d.deferred {
		check(&settings, nodePortsOK)
	}
	d.acrossServices(decls)

	sortDiagnostics(d.diags, order)
	boundMessages(d.diags)
	if len(d.diags) > 0 {
		for n, f := range cfg.Files {
			if unparsed[n] {
				continue
			}
			if whole, _ := hclsyntax.ParseConfig(f.Bytes, n, hcl.InitialPos); whole != nil {
				cfg.Files[n] = whole
			}
		}
	}
	if d.diags.HasErrors() {
		return cfg, d.diags
	}
	cfg.Settings = settings
	for _, decl := range decls {
		cfg.Services = append(cfg.Services, decl.svc)
	}
	sort.SliceStable(cfg.Services, func(i, j int) bool { return cfg.Services[i].Name < cfg.Services[j].Name })
	return cfg, d.diags
}

// parsed is one file's parse (parseFile), or guard's refusal of it.
type parsed struct {
	guard *hcl.Diagnostic
	file  *hcl.File
	raw   *rawFile
	diags hcl.Diagnostics
}

// parseEach parses the files of names on as many goroutines as Go runs
// threads and gives each parse to use, in the order of names, on the
// caller's goroutine: what use decodes (values, diagnostics, duplicates
// across files) stays sequential and ordered, while the syntax trees,
// most of a parse's cost, are built in parallel (10,000 services in 50
// files: 1.4 s -> 0.9 s on two cores). The files being parsed or waiting
// for use hold at most parseBudget bytes (a larger file alone), so that
// memory follows the largest files, as when they were parsed one at a
// time, however many cores there are.
func parseEach(names []string, files map[string][]byte, use func(i int, p parsed)) {
	results := make([]chan parsed, len(names))
	for i := range results {
		results[i] = make(chan parsed, 1)
	}
	slots := make(chan struct{}, runtime.GOMAXPROCS(0))
	budget := semaphore.NewWeighted(parseBudget)
	weight := func(n string) int64 { return min(int64(len(files[n])), parseBudget) }
	ctx, stop := context.WithCancel(context.Background())
	defer stop() // use panicked: the feeder stops
	go func() {
		for i, n := range names {
			if budget.Acquire(ctx, weight(n)) != nil {
				return
			}
			select {
			case slots <- struct{}{}:
			case <-ctx.Done():
				return
			}
			go func() {
				if g := guard(n, files[n]); g != nil {
					results[i] <- parsed{guard: g}
					return
				}
				file, raw, diags := parseFile(n, files[n])
				results[i] <- parsed{file: file, raw: raw, diags: diags}
			}()
		}
	}()
	for i, n := range names {
		use(i, <-results[i])
		<-slots
		budget.Release(weight(n))
	}
}

// parseBudget is how many bytes of files parseEach parses at once: their
// trees take about 25 times that (about 400 MB for MaxFileSize).
const parseBudget = MaxFileSize
