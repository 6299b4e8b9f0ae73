//go:build linux

package integration

import (
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/svcnat/svcnat/integration/netlab"
)

// Nothing svcnat does for --netns leaves that namespace: probes connect
// from it and resolve no names, and the reconcile daemon's listeners (the
// metrics address, the health-check node ports) live in it. nsOnly is an
// address that only the node namespace has, so reaching it proves where a
// socket is.
const nsOnly = "10.99.0.1"

func addNSOnly(t *testing.T, tl *trafficLab) {
	t.Helper()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if strings.HasPrefix(a.String(), nsOnly+"/") {
			t.Skipf("this host has %s itself, so it cannot tell namespaces apart", nsOnly)
		}
	}
	tl.Node.AddAddr(t, "lo", nsOnly+"/32")
}

// Probes: a host name is refused when the flags are read (exit 1, nothing
// changed or recorded); an HTTP redirect is not followed (the apply is
// rolled back, naming where it pointed); probes of an address only the
// namespace has pass.
func TestProbesStayInTheNamespace(t *testing.T) {
	tl, web, dns := remoteLab(t, "nft")
	addNSOnly(t, tl)
	tl.Node.ServeHTTP(t, "inside", nsOnly+":8080")
	redirect := &http.Server{Handler: http.RedirectHandler("http://"+nsOnly+":8080/", http.StatusFound), ReadHeaderTimeout: 5 * time.Second}
	go redirect.Serve(tl.Node.Listen(t, "tcp", nsOnly+":8081"))
	t.Cleanup(func() { redirect.Close() })
	before := tl.owned(t)
	tl.configure(t, web, dns)

	named := tl.SV.MustRun(t, 1, "apply", "-auto-approve", "--probe", "tcp://"+nsOnly+":8080", "--probe", "tcp://localhost:8080")
	if !strings.Contains(named.Stderr, `svcnat: error: --probe "tcp://localhost:8080": "localhost" is not an IP address`) ||
		!strings.Contains(named.Stderr, "nothing was changed") || strings.Contains(named.Stdout, "Apply complete") {
		t.Fatalf("apply with a host name probe:\n%s", named)
	}
	if got := tl.owned(t); got != before {
		t.Fatalf("a refused probe changed the rules:\n%s", applyDiff(before, got))
	}
	if show := tl.SV.MustRun(t, 0, "show").Stdout; !strings.Contains(show, "Generation 1 applied") {
		t.Fatalf("a refused probe changed the record:\n%s", show)
	}

	redirected := tl.SV.MustRun(t, 1, "apply", "-auto-approve", "--probe", "http://"+nsOnly+":8081/", "--probe-timeout", "1s")
	if !strings.Contains(redirected.Stderr, "probe http://"+nsOnly+":8081/ failed after") ||
		!strings.Contains(redirected.Stderr, "302 Found, a redirect to http://"+nsOnly+":8080/ (not followed") ||
		!strings.Contains(redirected.Stderr, "restored") {
		t.Fatalf("apply with a probe answered by a redirect:\n%s", redirected)
	}
	if got := tl.owned(t); got != before {
		t.Fatalf("a failed probe left:\n%s", applyDiff(before, got))
	}

	good := tl.SV.MustRun(t, 0, "apply", "-auto-approve", "--probe", "tcp://"+nsOnly+":8080", "--probe", "http://"+nsOnly+":8080/")
	if !strings.Contains(good.Stdout, "2 probes passed.") {
		t.Fatalf("apply with probes of the namespace's own address:\n%s", good)
	}
	remoteExpect(t, tl, "backend-1")
}

// The reconcile daemon listens in the namespace: its metrics address and
// a health-check node port answer at the address only the namespace has.
// A host name for --metrics-addr is refused before the first pass.
func TestReconcileListensInTheNamespace(t *testing.T) {
	tl := newTrafficLab(t, "nft", netlab.Options{Backends: 1, HTTPPorts: []int{80}})
	addNSOnly(t, tl)
	lb := trWeb("default/local", "10.32.0.70", trEndpoints("node1", trBackendIP4(0))...)
	lb.Type, lb.ETP, lb.HCNodePort = "LoadBalancer", "Local", 30500
	lb.Ports[0].NodePort = 30080
	tl.configure(t, lb)
	before := tl.owned(t)

	refused := tl.SV.MustRun(t, 1, "reconcile", "--metrics-addr", "localhost:9823")
	if !strings.Contains(refused.Stderr, `svcnat: error: --metrics-addr "localhost:9823": "localhost" is not an IP address`) ||
		!strings.Contains(refused.Stderr, "svcnat: hint:") {
		t.Fatalf("reconcile with a host name for --metrics-addr:\n%s", refused)
	}
	if got := tl.owned(t); got != before {
		t.Fatalf("a refused reconcile applied:\n%s", applyDiff(before, got))
	}

	d := startDaemon(t, tl.SV, "--interval", "1h", "--metrics-addr", nsOnly+":9823")
	// The JSON log gives durations in seconds, as the metrics do.
	start := d.await(t, time.Minute, "msg=reconciling")
	applied := d.await(t, time.Minute, "msg=applied", "event=start", "generation=1")
	if took, ok := applied["took_seconds"].(float64); start["interval_seconds"] != 3600.0 || !ok || took <= 0 || applied["took"] != nil {
		t.Fatalf("durations in the JSON log are not seconds: %v\n%v", start, applied)
	}
	if _, err := tl.Node.HTTPGet("http://" + nsOnly + ":9823/healthz"); err != nil {
		t.Fatalf("the metrics listener, from the namespace: %v", err)
	}
	if _, err := tl.Node.HTTPGet("http://" + nsOnly + ":30500/"); err != nil {
		t.Fatalf("the health-check node port, from the namespace: %v", err)
	}
}
