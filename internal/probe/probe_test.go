package probe

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	for _, bad := range []string{"ftp://1.2.3.4:21", "tcp://1.2.3.4", "http://:80/x", "1.2.3.4:80", "tcp://1.2.3.4:0",
		"udp://10.0.0.1:53?sned=ping", "udp://10.0.0.1:53?send=ping&exepct=pong", "tcp://10.0.0.1:80?send=x", "tcp://10.0.0.1:80/healthz"} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("Parse(%q) accepted", bad)
		}
	}
	if p, err := Parse("tcp://[fd00:32::10]:80"); err != nil || p.addr != "[fd00:32::10]:80" {
		t.Errorf("IPv6 probe: %+v, %v", p, err)
	}
	p, err := Parse("udp://10.32.0.10:53?send=ping&expect=pong")
	if err != nil || p.send != "ping" || p.expect != "pong" || p.addr != "10.32.0.10:53" {
		t.Fatalf("udp probe: %+v, %v", p, err)
	}
	if p, _ := Parse("http://10.0.0.1:8080/healthz?x=1"); p.path != "/healthz?x=1" {
		t.Fatalf("http path %q", p.path)
	}
}

// Each refusal says what is wrong: a kind svcnat cannot probe is not a
// missing port, and one attempt is not "1 attempts".
func TestParseSaysWhatIsWrong(t *testing.T) {
	for url, want := range map[string]string{
		"https://10.0.0.1/healthz":     "https is not supported (want tcp, http or udp)",
		"https://10.0.0.1:443/healthz": "https is not supported (want tcp, http or udp)",
		"ftp://10.0.0.1:21":            `unknown kind "ftp" (want tcp, http or udp)`,
		"10.0.0.1":                     "give the kind, address and port, e.g. tcp://10.32.0.10:80",
		"tcp://10.0.0.1":               "give the address and port, e.g. tcp://10.32.0.10:80",
	} {
		if _, err := Parse(url); err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("Parse(%q) = %v, want %q", url, err, want)
		}
	}
	p, _ := Parse("tcp://10.0.0.1:80")
	for n, want := range map[int]string{1: "after 1 attempt: refused", 3: "after 3 attempts: refused"} {
		if got := (&Error{Probe: p, Attempts: n, Err: errors.New("refused")}).Error(); !strings.HasSuffix(got, want) {
			t.Errorf("%d attempts: %q, want it to end %q", n, got, want)
		}
	}
}

// A probe names an IP address: a host name would be resolved on threads of
// svcnat's own namespace, sending DNS queries outside --netns, so it is
// refused when the flag is read, before anything changes.
func TestParseRefusesHostNames(t *testing.T) {
	for _, c := range []struct{ url, host string }{
		{"tcp://nginx.local:80", "nginx.local"},
		{"http://example:80/x", "example"},
		{"udp://host:53", "host"},
		{"tcp://localhost:80", "localhost"},
	} {
		_, err := Parse(c.url)
		if err == nil || !strings.Contains(err.Error(), `"`+c.host+`" is not an IP address`) {
			t.Errorf("Parse(%q) = %v, want a refusal naming %q", c.url, err, c.host)
		}
	}
	if _, err := Parse("tcp://[fe80::1%25eth0]:80"); err == nil || !strings.Contains(err.Error(), "zone") {
		t.Errorf("a zoned IPv6 probe: %v", err)
	}
}

// Probes against listeners on loopback, in svcnat's own namespace.
func TestRun(t *testing.T) {
	ok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/bad" {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer ok.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
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
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
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
	closed, _ := net.Listen("tcp", "127.0.0.1:0")
	closedAddr := closed.Addr().String()
	closed.Close()

	http := strings.TrimPrefix(ok.URL, "http://")
	pass := []string{"tcp://" + ln.Addr().String(), "http://" + http + "/", "udp://" + pc.LocalAddr().String() + "?send=hi&expect=HI"}
	var probes []Probe
	for _, u := range pass {
		p, err := Parse(u)
		if err != nil {
			t.Fatal(err)
		}
		probes = append(probes, p)
	}
	if err := Run(context.Background(), "", probes, time.Second); err != nil {
		t.Fatalf("passing probes: %v", err)
	}
	for _, c := range []struct{ url, want string }{
		{"http://" + http + "/bad", "503"},
		{"tcp://" + closedAddr, "refused"},
		{"udp://" + pc.LocalAddr().String() + "?expect=nope", `want "nope"`},
	} {
		p, _ := Parse(c.url)
		err := Run(context.Background(), "", []Probe{p}, 300*time.Millisecond)
		var pe *Error
		if !errors.As(err, &pe) || pe.Attempts < 2 || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), c.url) {
			t.Errorf("%s: err = %v, want a retried failure saying %q", c.url, err, c.want)
		}
	}
}

// fakeClock is a clock whose time moves only when Run pauses.
type fakeClock struct{ t time.Time }

func (f *fakeClock) clock() clock {
	return clock{now: func() time.Time { return f.t }, sleep: func(ctx context.Context, d time.Duration) error {
		f.t = f.t.Add(d)
		return ctx.Err()
	}}
}

// Each probe is retried until the timeout has passed since its own first
// attempt, as --probe-timeout says: a probe that passes late does not eat
// the time of the probes after it.
func TestEachProbeHasItsOwnTimeout(t *testing.T) {
	seen := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen[r.URL.Path]++ // the probes run one at a time
		if r.URL.Path == "/never" || seen[r.URL.Path] <= 4 {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	probe := func(path string) Probe {
		p, err := Parse(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	// Each of /a and /b passes at its fifth attempt, four pauses (0.8s)
	// after its first; the timeout is 1s.
	clk := &fakeClock{t: time.Unix(0, 0)}
	if err := run(context.Background(), "", []Probe{probe("/a"), probe("/b")}, time.Second, clk.clock()); err != nil {
		t.Fatalf("two probes that each pass within the timeout: %v", err)
	}
	if seen["/a"] != 5 || seen["/b"] != 5 {
		t.Fatalf("attempts %v, want 5 each", seen)
	}
	// A probe that never passes is tried for the whole timeout after a
	// slow one: at 0s, 0.2s, ... 1s of its own.
	err := run(context.Background(), "", []Probe{probe("/c"), probe("/never")}, time.Second, clk.clock())
	var pe *Error
	if !errors.As(err, &pe) || pe.Probe.URL != srv.URL+"/never" || pe.Attempts != 6 || !strings.Contains(err.Error(), "503") {
		t.Fatalf("a failing probe after a slow one: %v (%+v), want 6 attempts", err, pe)
	}
}

// An HTTP probe does not follow a redirect: a 3xx fails, naming where it
// pointed, so the probe checks the address it was given and nothing else
// (a redirect to a host name would need a lookup outside --netns).
func TestHTTPProbeDoesNotFollowRedirects(t *testing.T) {
	var followed bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/moved":
			http.Redirect(w, r, "/ok", http.StatusFound)
		case "/ok":
			followed = true
		}
	}))
	defer srv.Close()
	p, err := Parse(srv.URL + "/moved")
	if err != nil {
		t.Fatal(err)
	}
	clk := &fakeClock{t: time.Unix(0, 0)}
	err = run(context.Background(), "", []Probe{p}, 0, clk.clock())
	if err == nil || followed || !strings.Contains(err.Error(), "302 Found") || !strings.Contains(err.Error(), "/ok") {
		t.Fatalf("a probe answered with a redirect: %v (followed: %v)", err, followed)
	}
}

// New builds from parts the probe Parse reads from a URL, and refuses
// what Parse refuses: a host name, a part the kind does not take.
func TestNew(t *testing.T) {
	for _, c := range []struct{ scheme, addr, path, send, expect, url string }{
		{"tcp", "10.0.0.1:80", "", "", "", "tcp://10.0.0.1:80"},
		{"http", "[fd00::1]:8080", "/healthz?x=1", "", "", "http://[fd00::1]:8080/healthz?x=1"},
		{"http", "10.0.0.1:8080", "", "", "", "http://10.0.0.1:8080/"},
		{"udp", "10.0.0.1:53", "", "ping", "pong", "udp://10.0.0.1:53?expect=pong&send=ping"},
		{"udp", "10.0.0.1:53", "", "", "", "udp://10.0.0.1:53"},
	} {
		p, err := New(c.scheme, c.addr, c.path, c.send, c.expect)
		if err != nil {
			t.Fatalf("New(%q, %q, %q, %q, %q): %v", c.scheme, c.addr, c.path, c.send, c.expect, err)
		}
		parsed, err := Parse(c.url)
		if err != nil || p != parsed {
			t.Errorf("New(%q, %q, ...) = %+v, want %+v (Parse(%q), %v)", c.scheme, c.addr, p, parsed, c.url, err)
		}
	}
	for _, bad := range [][5]string{
		{"https", "10.0.0.1:443", "", "", ""},
		{"tcp", "web:80", "", "", ""},
		{"tcp", "10.0.0.1:0", "", "", ""},
		{"tcp", "10.0.0.1:80", "/x", "", ""},
		{"http", "10.0.0.1:80", "", "ping", ""},
		{"http", "10.0.0.1:80", "healthz", "", ""},
	} {
		if p, err := New(bad[0], bad[1], bad[2], bad[3], bad[4]); err == nil {
			t.Errorf("New(%q) accepted: %+v", bad, p)
		}
	}
}

// A health check's HTTP try passes a 2xx or 3xx answer and follows no
// redirect; a probe's passes 2xx only (TestHTTPProbeDoesNotFollowRedirects).
func TestTryPassRedirects(t *testing.T) {
	var followed bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/moved":
			http.Redirect(w, r, "/ok", http.StatusFound)
		case "/ok":
			followed = true
		case "/bad":
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	for path, pass := range map[string]bool{"/moved": true, "/": true, "/bad": false} {
		p, err := New("http", addr, path, "", "")
		if err != nil {
			t.Fatal(err)
		}
		err = p.PassRedirects().Try(context.Background(), "", time.Second)
		if (err == nil) != pass {
			t.Errorf("%s: Try = %v, want passing %v", path, err, pass)
		}
		if path == "/moved" {
			if err := p.Try(context.Background(), "", time.Second); err == nil || !strings.Contains(err.Error(), "302") {
				t.Errorf("a probe's try passed a redirect: %v", err)
			}
		}
	}
	if followed {
		t.Error("a redirect was followed")
	}
}
