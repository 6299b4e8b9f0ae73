package cli

import (
	"bytes"
	"strings"
	"testing"

	"github.com/svcnat/svcnat/internal/engine"
)

// An apply run inside a named namespace without --netns (ip netns exec A
// svcnat apply --confirm-timeout) gives its revert watcher, which systemd
// starts outside it, --netns A: the watcher reverts A's rules, and its
// state directory's namespace check lets it.
func TestWatcherOfAnApplyInsideANamespaceGetsItsName(t *testing.T) {
	h := newFakeHost(t)
	// svcnat runs inside svcnat-a, without --netns.
	inside := func(args ...string) (string, int) {
		var out bytes.Buffer
		env := h.env(strings.NewReader(""), &out, &out)
		open := env.OpenHost
		env.OpenHost = func(o engine.HostOptions) (*engine.Host, error) {
			host, err := open(o)
			if err == nil && o.NetNS == "" {
				host.RunsIn = "svcnat-a"
			}
			return host, err
		}
		code := Run(env, append([]string{"--no-color", "--node", "n1", "--state-dir", h.stateDir, "-c", h.config}, args...))
		return out.String(), code
	}
	if out, code := inside("apply", "-auto-approve"); code != ExitOK {
		t.Fatalf("apply: exit %d\n%s", code, out)
	}
	before := h.rules()
	writeFile(t, h.config, "nginx.hcl", nginxTwo)
	if out, code := inside("apply", "-auto-approve", "--confirm-timeout", "200ms"); code != ExitOK {
		t.Fatalf("apply --confirm-timeout: exit %d\n%s", code, out)
	}
	if w := h.watcher(0); w.code != ExitOK || !strings.Contains(w.output, "msg=reverted") {
		t.Fatalf("watcher: exit %d\n%s", w.code, w.output)
	}
	if h.rules() != before {
		t.Fatal("the watcher did not revert the apply")
	}
}
