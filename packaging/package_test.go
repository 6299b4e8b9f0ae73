// Package packaging_test builds svcnat's packages as make package does and
// checks them as a user installing one would.
package packaging_test

import (
	"bytes"
	"crypto/sha256"
	"debug/elf"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// build runs scripts/package.sh into dist and returns the .deb and .rpm.
func build(t *testing.T, dist string) (deb, rpm string) {
	t.Helper()
	cmd := exec.Command("bash", "scripts/package.sh")
	cmd.Dir = ".."
	cmd.Env = append(os.Environ(), "DIST="+dist, "VERSION=v1.2.3", "SOURCE_DATE_EPOCH=1700000000")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("scripts/package.sh: %v\n%s", err, out)
	}
	debs, _ := filepath.Glob(filepath.Join(dist, "*.deb"))
	rpms, _ := filepath.Glob(filepath.Join(dist, "*.rpm"))
	if len(debs) != 1 || len(rpms) != 1 {
		t.Fatalf("packages: %v %v", debs, rpms)
	}
	return debs[0], rpms[0]
}

func sum(t *testing.T, path string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// isStatic reports whether an ELF binary needs no dynamic loader.
func isStatic(path string) (bool, error) {
	f, err := elf.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return false, nil
		}
	}
	return true, nil
}

func TestPackage(t *testing.T) {
	if testing.Short() {
		t.Skip("builds nfpm and two packages")
	}
	if _, err := exec.LookPath("dpkg-deb"); err != nil {
		t.Skip("needs dpkg-deb to read the .deb")
	}
	dist := t.TempDir()
	deb, rpm := build(t, dist)

	// The README (Install) names the files as they are built.
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	arch := map[string]string{"amd64": "x86_64", "arm64": "aarch64"}[runtime.GOARCH]
	for name, want := range map[string]string{
		"svcnat_1.2.3_" + runtime.GOARCH + ".deb": "`dist/svcnat_<version>_<arch>.deb`",
		"svcnat-1.2.3-1." + arch + ".rpm":         "`dist/svcnat-<version>-1.<arch>.rpm`",
	} {
		if filepath.Base(deb) != name && filepath.Base(rpm) != name {
			t.Errorf("built %s and %s, not %s", filepath.Base(deb), filepath.Base(rpm), name)
		}
		if !bytes.Contains(readme, []byte(want)) {
			t.Errorf("README.md does not name %s as %s", name, want)
		}
	}

	// Metadata.
	for field, want := range map[string]string{
		"Package": "svcnat", "Version": "1.2.3", "Depends": "iptables", "Section": "net",
		"Maintainer": "svcnat developers <svcnat@users.noreply.github.com>", "Homepage": "https://github.com/svcnat/svcnat",
	} {
		if got := strings.TrimSpace(run(t, "dpkg-deb", "-f", deb, field)); got != want {
			t.Errorf("%s: %q, want %q", field, got, want)
		}
	}
	if d := run(t, "dpkg-deb", "-f", deb, "Description"); !strings.HasPrefix(d, "Kubernetes Service virtual IPs on plain Linux hosts\n") {
		t.Errorf("Description: %q", d)
	}
	// Files.
	list := run(t, "dpkg-deb", "-c", deb)
	for _, f := range []string{
		"./usr/bin/svcnat", "./usr/share/man/man8/svcnat.8.gz",
		"./usr/share/bash-completion/completions/svcnat", "./usr/share/zsh/vendor-completions/_svcnat",
		"./usr/share/fish/vendor_completions.d/svcnat.fish",
		"./usr/lib/systemd/system/svcnat-reconcile.service", "./usr/lib/systemd/system/svcnat-pull.timer",
		"./usr/lib/svcnat/svcnat-pull", "./usr/lib/svcnat/svcnat-assemble",
		"./usr/share/doc/svcnat/copyright", "./usr/share/doc/svcnat/examples/nginx.hcl",
		"./usr/share/doc/svcnat/examples/fleet/repo/shared/web.hcl",
	} {
		if !strings.Contains(list, " "+f+"\n") {
			t.Errorf("the .deb has no %s", f)
		}
	}
	if strings.Contains(list, "_test.go") {
		t.Error("the .deb holds test files")
	}
	// Unpacked, it runs.
	root := t.TempDir()
	run(t, "dpkg-deb", "-x", deb, root)
	bin := filepath.Join(root, "usr/bin/svcnat")
	// With no iptables on PATH, version reads no host's rules.
	version := exec.Command(bin, "version")
	version.Env = append(os.Environ(), "PATH=/nonexistent")
	if v, err := version.CombinedOutput(); err != nil || !strings.HasPrefix(string(v), "svcnat v1.2.3 (go") {
		t.Errorf("version of the unpacked binary: %v %q", err, v)
	}
	if v := run(t, bin, "validate", "-c", filepath.Join(root, "usr/share/doc/svcnat/examples")); !strings.Contains(v, "The configuration is valid: 2 services") {
		t.Errorf("validate the shipped example: %q", v)
	}
	if static, err := isStatic(bin); err != nil || !static {
		t.Errorf("the binary is not statically linked (%v)", err)
	}
	// The installed bash completion completes commands and flags.
	script := filepath.Join(root, "usr/share/bash-completion/completions/svcnat")
	complete := func(words ...string) string {
		t.Helper()
		line := fmt.Sprintf(`source %q; COMP_WORDS=(%s); COMP_CWORD=%d; _svcnat; echo "${COMPREPLY[*]}"`,
			script, strings.Join(words, " "), len(words)-1)
		cmd := exec.Command("bash", "-c", line)
		cmd.Env = append(os.Environ(), "PATH="+filepath.Join(root, "usr/bin")+":"+os.Getenv("PATH"))
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("bash completion: %v\n%s", err, out)
		}
		return strings.TrimSpace(string(out))
	}
	if got := complete("svcnat", "ap"); got != "apply" {
		t.Errorf("svcnat ap<TAB>: %q", got)
	}
	if got := complete("svcnat", "conf"); got != "confirm" { // not the hidden confirm-watch
		t.Errorf("svcnat conf<TAB>: %q", got)
	}
	if got := complete("svcnat", "apply", "--confirm-t"); got != "--confirm-timeout" {
		t.Errorf("svcnat apply --confirm-t<TAB>: %q", got)
	}
	// The .rpm is an RPM.
	b, err := os.ReadFile(rpm)
	if err != nil || !bytes.HasPrefix(b, []byte{0xed, 0xab, 0xee, 0xdb}) {
		t.Errorf("%s is not an RPM package (%v)", rpm, err)
	}
	// Reproducible: the same commit and time give the same bytes.
	deb2, rpm2 := build(t, t.TempDir())
	if sum(t, deb) != sum(t, deb2) || sum(t, rpm) != sum(t, rpm2) {
		t.Error("two builds of the same commit differ")
	}
}
