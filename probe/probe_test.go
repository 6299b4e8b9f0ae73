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
	for _, bad := range []string{"ftp://1.2.3.4:21", "tcp://1.2.3.4", "http://:80/x", "1.2.3.4:80"} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("Parse(%q) accepted", bad)
		}
	}
	p, err := Parse("udp://10.32.0.10:53?send=ping&expect=pong")
	if err != nil || p.send != "ping" || p.expect != "pong" || p.addr != "10.32.0.10:53" {
		t.Fatalf("udp probe: %+v, %v", p, err)
	}
	if p, _ := Parse("http://10.0.0.1:8080/healthz?x=1"); p.path != "/healthz?x=1" {
		t.Fatalf("http path %q", p.path)
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
