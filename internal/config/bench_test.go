package config

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"

	"github.com/svcnat/svcnat/internal/bench"
)

// benchDir writes the generated configuration (bench.Files), 10,000
// services with five endpoints each unless make bench's N and E say
// otherwise (bench.FromEnv), into a temporary directory.
func benchDir(b *testing.B) string {
	dir := b.TempDir()
	if err := bench.Write(dir, bench.FromEnv(b)); err != nil {
		b.Fatal(err)
	}
	return dir
}

// BenchmarkParseBare is the floor: HCL's own parser over the same files,
// nothing decoded.
func BenchmarkParseBare10k(b *testing.B) {
	dir := benchDir(b)
	names, _ := filepath.Glob(filepath.Join(dir, "*.hcl"))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for _, n := range names {
			src, err := os.ReadFile(n)
			if err != nil {
				b.Fatal(err)
			}
			if _, diags := hclsyntax.ParseConfig(src, n, hcl.InitialPos); diags.HasErrors() {
				b.Fatal(diags)
			}
		}
	}
}

// BenchmarkLoad10k decodes and validates the same files.
func BenchmarkLoad10k(b *testing.B) {
	dir := benchDir(b)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, diags := Load(dir); diags.HasErrors() {
			b.Fatal(diags)
		}
	}
}
