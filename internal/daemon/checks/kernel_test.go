package checks

import (
	"context"
	"net"
	"net/http"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/svcnat/svcnat/internal/config"
	"github.com/svcnat/svcnat/internal/health"
	"github.com/svcnat/svcnat/internal/kernel/netns"
	"github.com/svcnat/svcnat/internal/probe"
	"github.com/svcnat/svcnat/internal/testns"
)

// backend is a listener in a namespace that a test stops and starts.
type backend struct {
	t     *testing.T
	start func() (stop func())
	stop  func()
}

func (b *backend) up() {
	b.t.Helper()
	if b.stop == nil {
		b.stop = b.start()
	}
}

func (b *backend) down() {
	if b.stop != nil {
		b.stop()
		b.stop = nil
	}
}

// The real checks, from the checker's namespace to listeners there: tcp
// connect, http GET (answered with a redirect, which passes), udp
// send/expect. Each endpoint goes down within fall × interval + timeout
// + 1 s of its listener stopping, and comes back within rise × interval
// + timeout + 1 s of it starting again. The address exists only in the
// test's namespace, so a check sent from any other fails.
func TestRealChecks(t *testing.T) {
	ns := testns.New(t)
	ns.MustExec(t, "", "ip", "addr", "add", "10.250.0.1/32", "dev", "lo")
	addr := netip.MustParseAddr("10.250.0.1")

	tcpBackend := &backend{t: t, start: func() func() {
		ln, err := netns.Listen(ns.Name, "tcp", "10.250.0.1:8080")
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				c.Close()
			}
		}()
		return func() { ln.Close() }
	}}
	httpBackend := &backend{t: t, start: func() func() {
		ln, err := netns.Listen(ns.Name, "tcp", "10.250.0.1:8081")
		if err != nil {
			t.Fatal(err)
		}
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/healthz" {
				http.Redirect(w, r, "/elsewhere", http.StatusFound)
				return
			}
			w.WriteHeader(http.StatusNotFound)
		})}
		go srv.Serve(ln)
		return func() { srv.Close() }
	}}
	udpBackend := &backend{t: t, start: func() func() {
		var pc net.PacketConn
		if err := netns.Do(ns.Name, func() (err error) {
			pc, err = net.ListenPacket("udp", "10.250.0.1:8053")
			return err
		}); err != nil {
			t.Fatal(err)
		}
		go func() {
			buf := make([]byte, 1500)
			for {
				n, from, err := pc.ReadFrom(buf)
				if err != nil {
					return
				}
				pc.WriteTo([]byte(strings.ToUpper(string(buf[:n]))), from)
			}
		}()
		return func() { pc.Close() }
	}}
	backends := map[string]*backend{"default/tcp": tcpBackend, "default/http": httpBackend, "default/udp": udpBackend}
	for _, b := range backends {
		b.up()
		t.Cleanup(b.down)
	}

	const interval, timeout, rise, fall = 200 * time.Millisecond, 300 * time.Millisecond, 2, 3
	hc := func(protocol string, port int) *config.HealthCheck {
		return &config.HealthCheck{Protocol: protocol, Port: port, Interval: interval, Timeout: timeout, Rise: rise, Fall: fall}
	}
	svc := func(name string, hc *config.HealthCheck) *config.Service {
		return &config.Service{Name: name, HealthCheck: hc,
			Ports:     []*config.Port{{Protocol: config.ProtoTCP, Port: 80, TargetPort: 80}},
			Endpoints: []*config.Endpoint{{Address: addr, Ready: true, Serving: true}}}
	}
	httpCheck := hc(config.CheckHTTP, 8081)
	httpCheck.Path = "/healthz"
	udpCheck := hc(config.CheckUDP, 8053)
	udpCheck.Send, udpCheck.Expect = "ping", "PING"
	c := &Checker{NetNS: ns.Name}
	c.Sync(&config.Config{Services: []*config.Service{
		svc("default/http", httpCheck), svc("default/tcp", hc(config.CheckTCP, 8080)), svc("default/udp", udpCheck)}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })

	// waitUp polls until service's endpoint is (up) or is not (down)
	// checked up, within bound.
	waitUp := func(service string, up bool, bound time.Duration) {
		t.Helper()
		k := key(service, "10.250.0.1")
		deadline := time.Now().Add(bound)
		for {
			st := c.View()[k]
			if st.Checked && st.Up == up {
				if !up && !strings.Contains(st.LastError, "refused") {
					t.Errorf("%s down: last error %q, want a refusal", service, st.LastError)
				}
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: not %s within %v: %+v", service, map[bool]string{true: "up", false: "down"}[up], bound, st)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	downBound := fall*interval + timeout + time.Second
	upBound := rise*interval + timeout + time.Second
	for service := range backends {
		waitUp(service, true, upBound+interval)
	}
	for service, b := range backends {
		b.down()
		waitUp(service, false, downBound)
		for other := range backends {
			if other != service && !c.View()[key(other, "10.250.0.1")].Up {
				t.Fatalf("%s went down with %s", other, service)
			}
		}
		b.up()
		waitUp(service, true, upBound)
	}
}

// BenchmarkTCPCheck is what the checker's checks cost beyond the checker
// (BenchmarkScheduler50k): one tcp check, from svcnat's own namespace
// (own), from another by name (netns: each dial opens the namespace and
// enters it on a thread of its own and leaves it, as --probe does) and
// by a netns.Dialer (netns-dialer: what the checker does), to a listener
// in the test's namespace.
func BenchmarkTCPCheck(b *testing.B) {
	ns := testns.New(b)
	ln, err := netns.Listen(ns.Name, "tcp", "127.0.0.1:8080")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	p, err := probe.New("tcp", "127.0.0.1:8080", "", "", "")
	if err != nil {
		b.Fatal(err)
	}
	own, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer own.Close()
	go func() {
		for {
			c, err := own.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	pOwn, err := probe.New("tcp", own.Addr().String(), "", "", "")
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name, ns string
		p        probe.Probe
	}{{"own", "", pOwn}, {"netns", ns.Name, p}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			cpu0 := cpuTime()
			for b.Loop() {
				if err := c.p.Try(context.Background(), c.ns, time.Second); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/float64(b.N), "cpu-ns/check")
		})
	}
	// netns-dialer is what the checker does: a dial into the namespace
	// by a netns.Dialer, through the checker's own path (check).
	b.Run("netns-dialer", func(b *testing.B) {
		b.ReportAllocs()
		c := &Checker{NetNS: ns.Name}
		follow := &follower{name: ns.Name}
		defer follow.close()
		j := job{probe: p, timeout: time.Second}
		cpu0 := cpuTime()
		for b.Loop() {
			if err := c.check(context.Background(), &j, follow); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/float64(b.N), "cpu-ns/check")
	})
}

// The checks follow their namespace when it is deleted and made again
// under its name (`ip netns del; ip netns add`), as reconcile's rules do:
// the dialer into the first one gives way to one into the new one.
// The old namespace lives on with a listener in it (a socket keeps its
// namespace), so a check still sent from there would pass: the endpoint
// must go down (refused by the new namespace, which has the address but
// no listener), then come back when the new namespace listens.
func TestChecksFollowANamespaceMadeAgain(t *testing.T) {
	ns := testns.New(t)
	setup := func() {
		ns.MustExec(t, "", "ip", "link", "set", "lo", "up")
		ns.MustExec(t, "", "ip", "addr", "add", "10.250.0.1/32", "dev", "lo")
	}
	setup()
	serve := func() net.Listener {
		ln, err := netns.Listen(ns.Name, "tcp", "10.250.0.1:8080")
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				c.Close()
			}
		}()
		t.Cleanup(func() { ln.Close() })
		return ln
	}
	serve()

	const interval, timeout = 100 * time.Millisecond, 300 * time.Millisecond
	hc := &config.HealthCheck{Protocol: config.CheckTCP, Port: 8080, Interval: interval, Timeout: timeout, Rise: 1, Fall: 1}
	c := &Checker{NetNS: ns.Name, Concurrency: 1}
	c.Sync(&config.Config{Services: []*config.Service{{Name: "default/web", HealthCheck: hc,
		Ports:     []*config.Port{{Protocol: config.ProtoTCP, Port: 80, TargetPort: 80}},
		Endpoints: []*config.Endpoint{{Address: netip.MustParseAddr("10.250.0.1"), Ready: true, Serving: true}}}}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })

	k := key("default/web", "10.250.0.1")
	await := func(what string, ok func(st health.Status) bool) {
		t.Helper()
		deadline := time.Now().Add(followEvery + interval + timeout + 2*time.Second)
		for {
			st := c.View()[k]
			if st.Checked && ok(st) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %+v", what, st)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	await("up in the first namespace", func(st health.Status) bool { return st.Up })

	for _, args := range [][]string{{"netns", "del", ns.Name}, {"netns", "add", ns.Name}} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v: %s", args, err, out)
		}
	}
	setup()
	await("down in the namespace made again, which does not listen", func(st health.Status) bool {
		return !st.Up && strings.Contains(st.LastError, "refused")
	})
	serve()
	await("up when the namespace made again listens", func(st health.Status) bool { return st.Up })
}
