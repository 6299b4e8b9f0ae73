// Package probe checks, after an apply, that the network still works the
// way an operator said it must: a TCP connection is accepted, an HTTP
// request answered with a 2xx status, a UDP datagram answered. Probes run
// from a network namespace (the one the rules were applied to) and are
// retried until a deadline. The package knows nothing of rules.
package probe

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/svcnat/svcnat/iptables"
)

// Probe is one check, as --probe gives it:
//
//	tcp://IP:PORT                      a connection is accepted
//	http://IP:PORT/PATH                a GET is answered with a 2xx status
//	udp://IP:PORT?send=TEXT&expect=TEXT a datagram (default "svcnat-probe")
//	                                   is answered (with expect, if given)
type Probe struct {
	URL    string
	scheme string
	addr   string // host:port
	path   string // http
	send   string // udp
	expect string // udp; "" accepts any reply
}

// Parse reads a probe URL.
func Parse(raw string) (Probe, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return Probe{}, fmt.Errorf("probe %q: %w", raw, err)
	}
	p := Probe{URL: raw, scheme: u.Scheme, addr: u.Host}
	if u.Hostname() == "" || u.Port() == "" {
		return Probe{}, fmt.Errorf("probe %q: give the address and port, e.g. tcp://10.32.0.10:80", raw)
	}
	switch u.Scheme {
	case "tcp":
	case "http":
		p.path = u.RequestURI()
	case "udp":
		p.send, p.expect = "svcnat-probe", u.Query().Get("expect")
		if s := u.Query().Get("send"); s != "" {
			p.send = s
		}
	default:
		return Probe{}, fmt.Errorf("probe %q: unknown kind %q (want tcp, http or udp)", raw, u.Scheme)
	}
	return p, nil
}

// Error is a probe that did not pass by its deadline: the probe and what
// its last attempt found.
type Error struct {
	Probe    Probe
	Attempts int
	Err      error
}

func (e *Error) Error() string {
	return fmt.Sprintf("probe %s failed after %d attempts: %v", e.Probe.URL, e.Attempts, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// attempt bounds one attempt, so a dropped packet is retried in time.
const attempt = 2 * time.Second

// Run tries every probe from network namespace netns ("" for this one)
// until it passes or timeout has passed since Run began, and returns the
// first that did not pass as an *Error (nil when all did).
func Run(ctx context.Context, netns string, probes []Probe, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for _, p := range probes {
		n := 0
		for {
			n++
			err := p.try(ctx, netns, min(attempt, max(time.Until(deadline), 100*time.Millisecond)))
			if err == nil {
				break
			}
			if time.Now().After(deadline) || ctx.Err() != nil {
				return &Error{Probe: p, Attempts: n, Err: err}
			}
			select {
			case <-ctx.Done():
				return &Error{Probe: p, Attempts: n, Err: ctx.Err()}
			case <-time.After(min(200*time.Millisecond, time.Until(deadline))):
			}
		}
	}
	return nil
}

// try makes one attempt within d.
func (p Probe) try(ctx context.Context, netns string, d time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	switch p.scheme {
	case "tcp":
		c, err := dial(ctx, netns, "tcp", p.addr)
		if err != nil {
			return err
		}
		return c.Close()
	case "http":
		client := &http.Client{Transport: &http.Transport{
			DialContext:       func(ctx context.Context, n, a string) (net.Conn, error) { return dial(ctx, netns, n, a) },
			DisableKeepAlives: true,
		}}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+p.addr+p.path, nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
		if resp.StatusCode < 200 || resp.StatusCode > 299 {
			return fmt.Errorf("HTTP status %s", resp.Status)
		}
		return nil
	case "udp":
		c, err := dial(ctx, netns, "udp", p.addr)
		if err != nil {
			return err
		}
		defer c.Close()
		if dl, ok := ctx.Deadline(); ok {
			c.SetDeadline(dl)
		}
		if _, err := c.Write([]byte(p.send)); err != nil {
			return err
		}
		buf := make([]byte, 64<<10)
		n, err := c.Read(buf)
		if err != nil {
			return fmt.Errorf("no reply: %w", err)
		}
		if p.expect != "" && !bytes.Equal(bytes.TrimSpace(buf[:n]), []byte(p.expect)) {
			return fmt.Errorf("reply %q, want %q", strings.TrimSpace(string(buf[:n])), p.expect)
		}
		return nil
	}
	return errors.New("unknown probe")
}

// dial connects from netns: a socket belongs to the namespace of the
// thread that made it, and keeps it.
func dial(ctx context.Context, netns, network, addr string) (net.Conn, error) {
	var c net.Conn
	err := iptables.InNetNS(netns, func() (err error) {
		var d net.Dialer
		c, err = d.DialContext(ctx, network, addr)
		return err
	})
	return c, err
}
