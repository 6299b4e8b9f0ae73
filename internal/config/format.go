package config

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/hashicorp/hcl/v2/hclwrite"
)

// Format returns src in canonical HCL layout (indentation, spacing, aligned
// equals signs), as terraform fmt writes it. It changes whitespace only,
// never meaning. It does not check syntax: use FormatFile for files.
func Format(src []byte) []byte {
	return hclwrite.Format(src)
}

// FormatResult is the outcome of formatting one file.
type FormatResult struct {
	// Formatted is the canonical form; nil when the file has syntax errors.
	Formatted []byte
	// Changed reports whether Formatted differs from the source, which is
	// what svcnat fmt -check exits 3 on and -diff shows.
	Changed bool
	// File is the parsed source, for WriteDiagnostics.
	File *hcl.File
}

// FormatFile formats one file. A file with syntax errors is not formatted
// (hclwrite would re-space tokens it cannot make sense of); its errors are
// returned instead, as terraform fmt does. So is a file Load refuses
// before parsing: too large, or nested too deeply.
func FormatFile(name string, src []byte) (FormatResult, hcl.Diagnostics) {
	if d := guard(name, src); d != nil {
		return FormatResult{File: &hcl.File{Bytes: src}}, hcl.Diagnostics{d}
	}
	file, diags := hclsyntax.ParseConfig(src, name, hcl.InitialPos)
	res := FormatResult{File: file}
	if diags.HasErrors() {
		return res, diags
	}
	res.Formatted = Format(src)
	res.Changed = !bytes.Equal(res.Formatted, src)
	return res, diags
}

// FormatNames returns the *.hcl files fmt works on under path: path itself
// when it is a file, else the files of the directory as FileNames reads
// them, and with recursive the files of every directory below it too, in
// name order. Directories whose name starts with a dot (.git, an editor's
// .cache) are not entered, as FileNames skips dot files; nor are symbolic
// links to directories, which could loop. A directory below path without
// *.hcl files is no error (a repository's layout has many); a tree without
// any is, as a directory without any is to FileNames.
func FormatNames(path string, recursive bool) ([]string, hcl.Diagnostics) {
	fi, err := os.Stat(path)
	if !recursive || err != nil || !fi.IsDir() {
		return FileNames(path)
	}
	var names []string
	var diags hcl.Diagnostics
	var walk func(dir string)
	walk = func(dir string) {
		entries, err := os.ReadDir(dir)
		if err != nil {
			diags = append(diags, ioError("cannot read configuration directory", err))
			return
		}
		for _, e := range entries { // ReadDir sorts by name
			n := e.Name()
			if strings.HasPrefix(n, ".") {
				continue
			}
			full := filepath.Join(dir, n)
			switch {
			case e.IsDir(): // not a link: DirEntry does not follow them
				walk(full)
			case strings.HasSuffix(n, ".hcl"):
				if d := checkEntry(full); d != nil {
					diags = append(diags, d)
					continue
				}
				names = append(names, full)
			}
		}
	}
	walk(path)
	if len(names) == 0 && len(diags) == 0 {
		return nil, hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "no configuration files",
			Detail:   "Directory " + path + " and the directories below it hold no *.hcl files.",
		}}
	}
	return names, diags
}
