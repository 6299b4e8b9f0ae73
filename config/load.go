package config

import (
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// FileNames returns the files a configuration path denotes, in the order
// they are read: path itself when it is a file, else every *.hcl file
// directly in the directory, in name order. Dot files are skipped (editor
// lock files such as .#nginx.hcl end in .hcl too). svcnat fmt uses this so
// that it formats exactly the files that validate reads.
func FileNames(path string) ([]string, hcl.Diagnostics) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, hcl.Diagnostics{ioError("cannot read configuration", err)}
	}
	if !fi.IsDir() {
		return []string{path}, nil
	}
	entries, err := os.ReadDir(path)
	if err != nil {
		return nil, hcl.Diagnostics{ioError("cannot read configuration directory", err)}
	}
	var names []string
	for _, e := range entries { // ReadDir sorts by name
		n := e.Name()
		if strings.HasPrefix(n, ".") || !strings.HasSuffix(n, ".hcl") {
			continue
		}
		full := filepath.Join(path, n)
		if st, err := os.Stat(full); err != nil || st.IsDir() {
			// A dangling symlink or a directory named x.hcl is not a
			// configuration file; reading it below would only fail.
			continue
		}
		names = append(names, full)
	}
	if len(names) == 0 {
		return nil, hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "no configuration files",
			Detail:   "Directory " + path + " holds no *.hcl files; point -c at a .hcl file or at a directory of them.",
		}}
	}
	return names, nil
}

func ioError(summary string, err error) *hcl.Diagnostic {
	return &hcl.Diagnostic{Severity: hcl.DiagError, Summary: summary, Detail: err.Error() + "."}
}

// Load reads the configuration at path (a .hcl file, or a directory whose
// *.hcl files are read in name order), decodes it and validates it.
//
// Load always returns a non-nil *Config whose Files holds every file it
// could read, so that WriteDiagnostics can show source snippets even when
// loading fails. When diags has errors, Files is the only field set: a
// configuration with errors is never half used.
func Load(path string) (*Config, hcl.Diagnostics) {
	names, diags := FileNames(path)
	srcs := make(map[string][]byte, len(names))
	for _, n := range names {
		b, err := os.ReadFile(n)
		if err != nil {
			diags = append(diags, ioError("cannot read configuration file", err))
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
// Files are parsed one at a time and their syntax trees dropped once their
// blocks are decoded, so memory follows the largest file, not the whole
// configuration: a file's tree takes about 25 times its size. Config.Files
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
	for i, n := range names {
		order[n] = i
		file, raw, diags := parseFile(n, files[n])
		d.diags = append(d.diags, diags...)
		if file != nil {
			cfg.Files[n] = &hcl.File{Bytes: files[n]}
		}
		if raw == nil {
			continue
		}
		settingsBlocks = append(settingsBlocks, raw.Settings...)
		for _, rs := range raw.Services {
			decls = append(decls, d.service(rs))
		}
	}
	settings, nodePortsOK := d.settings(settingsBlocks)
	for _, check := range d.deferred {
		check(&settings, nodePortsOK)
	}
	d.acrossServices(decls)

	sortDiagnostics(d.diags, order)
	if len(d.diags) > 0 {
		for n, f := range cfg.Files {
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
