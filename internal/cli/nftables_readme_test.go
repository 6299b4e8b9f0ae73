package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/svcnat/svcnat/internal/engine"
	"github.com/svcnat/svcnat/internal/kernel/nftables"
)

// nftHost runs svcnat on the nftables backend's fake, with the README's
// examples as its configuration.
type nftHost struct {
	t                *testing.T
	fake             *nftables.Fake
	stateDir, config string
}

func newNFTHost(t *testing.T) *nftHost {
	t.Helper()
	h := &nftHost{t: t, fake: nftables.NewFake("SVCNAT"), stateDir: t.TempDir(), config: t.TempDir()}
	for _, f := range []string{"nginx.hcl", "dns.hcl", "settings.hcl"} {
		data, err := os.ReadFile(filepath.Join("../../examples", f))
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, h.config, f, string(data))
	}
	return h
}

func (h *nftHost) must(want int, args ...string) string {
	h.t.Helper()
	var out, errb bytes.Buffer
	env := Env{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb,
		OpenHost: func(o engine.HostOptions) (*engine.Host, error) {
			return &engine.Host{Kernel: h.fake, NetNS: o.NetNS}, nil
		}}
	full := append([]string{"--no-color", "--node", "node-a", "--local-address", "192.0.2.10", "--state-dir", h.stateDir, "-c", h.config}, args...)
	if code := Run(env, full); code != want {
		h.t.Fatalf("svcnat %s: exit %d, want %d\n%s%s", strings.Join(args, " "), code, want, out.String(), errb.String())
	}
	return out.String()
}

// The README's nftables plan is what svcnat plans on the nftables
// backend after the walkthrough's edit: the endpoint 10.64.3.2 removed.
func TestReadmeNFTablesPlan(t *testing.T) {
	h := newNFTHost(t)
	h.must(ExitOK, "apply", "-auto-approve", "--backend", "nftables")
	data, err := os.ReadFile(filepath.Join(h.config, "nginx.hcl"))
	if err != nil {
		t.Fatal(err)
	}
	edited := withoutEndpoint(t, string(data), "10.64.3.2")
	writeFile(t, h.config, "nginx.hcl", edited)
	got := h.must(ExitOK, "plan")
	if f := os.Getenv("SVCNAT_README_OUT"); f != "" {
		os.WriteFile(f, []byte(got), 0o644) // to renew the README's block by hand
	}
	if want := readmeBlock(t, "On nftables the walkthrough's edit plans as", ""); got != want {
		t.Fatalf("svcnat plan on nftables prints\n%s\nthe README shows\n%s", got, want)
	}
}

// withoutEndpoint is cfg without the endpoint block of addr.
func withoutEndpoint(t *testing.T, cfg, addr string) string {
	t.Helper()
	i := strings.Index(cfg, `"`+addr+`"`)
	if i < 0 {
		t.Fatalf("no endpoint %s in\n%s", addr, cfg)
	}
	start := strings.LastIndex(cfg[:i], "endpoint {")
	end := i + strings.Index(cfg[i:], "}") + 1
	for end < len(cfg) && cfg[end] == '\n' {
		end++
	}
	line := strings.LastIndex(cfg[:start], "\n") + 1
	return cfg[:line] + cfg[end:]
}

// apiService is the README's plain cluster-IP service (its nftables
// section), with the endpoints of addrs.
func apiService(addrs ...string) string {
	s := "service \"default/api\" {\n  cluster_ips = [\"10.32.0.62\"]\n\n  port {\n    name        = \"http\"\n    port        = 9000\n    target_port = 8080\n  }\n"
	for _, a := range addrs {
		s += "\n  endpoint {\n    address = \"" + a + "\"\n  }\n"
	}
	return s + "}\n"
}

// The README's chainless plan is what svcnat plans on the nftables
// backend when a plain cluster-IP service, which has no chain, gains an
// endpoint: its service-ips element goes to another dispatch chain, made
// for it, and vip-endpoints-tcp gains the endpoint.
func TestReadmeNFTablesChainlessPlan(t *testing.T) {
	h := newNFTHost(t)
	writeFile(t, h.config, "api.hcl", apiService("10.64.1.7", "10.64.2.7"))
	h.must(ExitOK, "apply", "-auto-approve", "--backend", "nftables")
	writeFile(t, h.config, "api.hcl", apiService("10.64.1.7", "10.64.2.7", "10.64.3.7"))
	got := h.must(ExitOK, "plan")
	if f := os.Getenv("SVCNAT_README_OUT"); f != "" {
		os.WriteFile(f, []byte(got), 0o644) // to renew the README's block by hand
	}
	if want := readmeBlock(t, "A plain cluster-IP service has no chain of its own", ""); got != want {
		t.Fatalf("svcnat plan on nftables prints\n%s\nthe README shows\n%s", got, want)
	}
}
