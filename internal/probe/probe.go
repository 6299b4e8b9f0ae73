// Package probe checks, after an apply, that the network still works the
// way an operator said it must: a TCP connection is accepted, an HTTP
// request answered with a 2xx status, a UDP datagram answered. Probes run
// from a network namespace (the one the rules were applied to), one after
// the other, each retried until its own deadline. Probes name IP addresses, never host names:
// nothing a probe does resolves a name or leaves its namespace. reconcile's
// health checks (internal/daemon/checks) are the same checks, made from
// parts (New) one try at a time (Try), with an HTTP 3xx passing. The
// package knows nothing of rules.
package probe

import (
	"bufio"
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

	"github.com/svcnat/svcnat/internal/kernel/netns"
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
	// redirectsPass: an HTTP 3xx answer passes (a health check's rule;
	// --probe wants 2xx). No redirect is followed either way.
	redirectsPass bool
}

// defaultSend is the datagram a udp probe sends when none is given.
const defaultSend = "svcnat-probe"

// New returns the probe made of its parts, as a health check gives them:
// scheme "tcp", "http" or "udp"; addr an IP address and port (never a
// name, see netns.LiteralAddr); path the HTTP request's path and query
// ("" for "/"); send and expect udp's datagram ("" for the default) and
// the reply it must match ("" accepts any). A part the scheme does not
// take must be "". URL is set to the probe as --probe would spell it,
// for messages.
func New(scheme, addr, path, send, expect string) (Probe, error) {
	switch scheme {
	case "tcp", "http", "udp":
	default:
		return Probe{}, fmt.Errorf("unknown kind %q (want tcp, http or udp)", scheme)
	}
	if err := netns.LiteralAddr(addr, false); err != nil {
		return Probe{}, err
	}
	if path != "" && scheme != "http" {
		return Probe{}, fmt.Errorf("a %s probe has no path (%q)", scheme, path)
	}
	if (send != "" || expect != "") && scheme != "udp" {
		return Probe{}, fmt.Errorf("a %s probe sends and expects nothing", scheme)
	}
	p := Probe{scheme: scheme, addr: addr, path: path, send: send, expect: expect}
	p.URL = scheme + "://" + addr
	switch scheme {
	case "http":
		if p.path == "" {
			p.path = "/"
		}
		if !strings.HasPrefix(p.path, "/") {
			return Probe{}, fmt.Errorf("an http path must start with / (%q)", path)
		}
		p.URL += p.path
	case "udp":
		q := url.Values{}
		if send != "" {
			q.Set("send", send)
		}
		if expect != "" {
			q.Set("expect", expect)
		}
		if len(q) > 0 {
			p.URL += "?" + q.Encode()
		}
		if p.send == "" {
			p.send = defaultSend
		}
	}
	return p, nil
}

// PassRedirects returns p with an HTTP 3xx answer passing, as a health
// check's does (a redirect says the server is up); the redirect is still
// not followed.
func (p Probe) PassRedirects() Probe {
	p.redirectsPass = true
	return p
}

// Parse reads a probe URL. The host must be an IP address: a name is
// refused here, before anything changes, since resolving it would send
// DNS queries from svcnat's own namespace (see netns.LiteralAddr).
// Errors say what is wrong with raw; the caller names it.
func Parse(raw string) (Probe, error) {
	u, err := url.Parse(raw)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return Probe{}, err
	}
	p := Probe{URL: raw, scheme: u.Scheme, addr: u.Host}
	// The kind first: https://host has no port either, and asking for
	// one would hide that svcnat cannot probe it at all.
	switch u.Scheme {
	case "tcp", "http", "udp":
	case "https":
		return Probe{}, errors.New("https is not supported (want tcp, http or udp): probe the port with tcp://ADDRESS:PORT")
	case "":
		return Probe{}, errors.New("give the kind, address and port, e.g. tcp://10.32.0.10:80")
	default:
		return Probe{}, fmt.Errorf("unknown kind %q (want tcp, http or udp)", u.Scheme)
	}
	if u.Hostname() == "" || u.Port() == "" {
		return Probe{}, errors.New("give the address and port, e.g. tcp://10.32.0.10:80")
	}
	if err := netns.LiteralAddr(u.Host, false); err != nil {
		return Probe{}, err
	}
	// Only an HTTP probe's query is the server's; anywhere else a
	// parameter svcnat does not know is a typo (sned=, exepct=) that
	// would quietly weaken the check.
	if u.Scheme != "http" {
		for k := range u.Query() {
			if u.Scheme != "udp" || k != "send" && k != "expect" {
				return Probe{}, fmt.Errorf("unknown parameter %q for a %s probe (udp takes send= and expect=; tcp takes none)", k, u.Scheme)
			}
		}
		if u.Path != "" {
			return Probe{}, fmt.Errorf("a %s probe has no path (%q)", u.Scheme, u.Path)
		}
	}
	switch u.Scheme {
	case "tcp":
	case "http":
		p.path = u.RequestURI()
	case "udp":
		p.send, p.expect = defaultSend, u.Query().Get("expect")
		if s := u.Query().Get("send"); s != "" {
			p.send = s
		}
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
	attempts := "attempts"
	if e.Attempts == 1 {
		attempts = "attempt"
	}
	return fmt.Sprintf("probe %s failed after %d %s: %v", e.Probe.URL, e.Attempts, attempts, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// attempt bounds one attempt, so a dropped packet is retried in time;
// pause is the wait between attempts.
const (
	attempt = 2 * time.Second
	pause   = 200 * time.Millisecond
)

// Run tries the probes in turn from network namespace netns ("" for this
// one), each until it passes or timeout has passed since its own first
// attempt (--probe-timeout is per probe), and returns the first that did
// not pass as an *Error (nil when all did).
func Run(ctx context.Context, netns string, probes []Probe, timeout time.Duration) error {
	return run(ctx, netns, probes, timeout, wallClock)
}

// clock is the time Run retries by; tests give a fake one, so retry
// deadlines are checked without waiting for them.
type clock struct {
	now   func() time.Time
	sleep func(ctx context.Context, d time.Duration) error
}

var wallClock = clock{now: time.Now, sleep: func(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}}

func run(ctx context.Context, netns string, probes []Probe, timeout time.Duration, clk clock) error {
	for _, p := range probes {
		deadline := clk.now().Add(timeout)
		for n := 1; ; n++ {
			err := p.Try(ctx, netns, min(attempt, max(deadline.Sub(clk.now()), 100*time.Millisecond)))
			if err == nil {
				break
			}
			if !clk.now().Before(deadline) || ctx.Err() != nil {
				return &Error{Probe: p, Attempts: n, Err: err}
			}
			if err := clk.sleep(ctx, min(pause, deadline.Sub(clk.now()))); err != nil {
				return &Error{Probe: p, Attempts: n, Err: err}
			}
		}
	}
	return nil
}

// Try makes one attempt at p from network namespace ns ("" for this
// one), ended after d: nil when it passed, else what it found. Run retries
// it; a health check makes one per interval (TryDial).
func (p Probe) Try(ctx context.Context, ns string, d time.Duration) error {
	return p.TryDial(ctx, func(ctx context.Context, network, addr string) (net.Conn, error) {
		return netns.Dial(ctx, ns, network, addr)
	}, d)
}

// DialFunc makes a try's connection: netns.Dial from a namespace, or a
// netns.Dialer's DialContext.
type DialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

// TryDial is Try with its connection made by dial: the checker's, which
// dials into one namespace 25,000 times a second, keeps it open
// (netns.Dialer).
func (p Probe) TryDial(ctx context.Context, dial DialFunc, d time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	switch p.scheme {
	case "tcp":
		c, err := dial(ctx, "tcp", p.addr)
		if err != nil {
			return err
		}
		return c.Close()
	case "http":
		return p.get(ctx, dial)
	case "udp":
		c, err := dial(ctx, "udp", p.addr)
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

// maxInformational bounds the 1xx answers an HTTP try reads past, as
// net/http's client does.
const maxInformational = 5

// get is an http try: a GET of p's path on a connection dial makes, on
// the calling goroutine, without an http.Transport (which starts two
// goroutines per connection besides the dial's). One request,
// "Connection: close", no proxy, and no redirect followed: the probe
// checks the address it names, and a 3xx fails it, saying where it
// pointed (or passes it, with PassRedirects).
func (p Probe) get(ctx context.Context, dial DialFunc) error {
	u := "http://" + p.addr + p.path
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	req.Close = true
	c, err := dial(ctx, "tcp", p.addr)
	if err != nil {
		return &url.Error{Op: "Get", URL: u, Err: err}
	}
	defer c.Close()
	// The context's end (its deadline, or a cancel) ends a read or write
	// in progress, the body's too.
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	resp, err := roundTrip(ctx, c, req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	if p.redirectsPass && resp.StatusCode >= 300 && resp.StatusCode <= 399 {
		return nil
	}
	if loc := resp.Header.Get("Location"); resp.StatusCode >= 300 && resp.StatusCode <= 399 && loc != "" {
		return fmt.Errorf("HTTP status %s, a redirect to %s (not followed: probe the final address)", resp.Status, loc)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("HTTP status %s", resp.Status)
	}
	return nil
}

// roundTrip writes req on c and reads its answer, past 1xx ones; its
// errors read as net/http's client's do (`Get "URL": ...`), and say the
// context's error when it ended the try.
func roundTrip(ctx context.Context, c net.Conn, req *http.Request) (resp *http.Response, err error) {
	defer func() {
		if err != nil {
			if ctx.Err() != nil {
				err = ctx.Err()
			}
			err = &url.Error{Op: "Get", URL: req.URL.String(), Err: err}
		}
	}()
	if err := req.Write(c); err != nil {
		return nil, err
	}
	br := bufio.NewReader(c)
	for range maxInformational + 1 {
		if resp, err = http.ReadResponse(br, req); err != nil {
			return nil, err
		}
		if resp.StatusCode >= 200 || resp.StatusCode == http.StatusSwitchingProtocols {
			break
		}
	}
	return resp, nil
}
