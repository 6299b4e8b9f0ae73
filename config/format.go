package config

import (
	"bytes"

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
