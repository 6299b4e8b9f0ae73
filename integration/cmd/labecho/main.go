// Command labecho is the tiny echo server and client that `make demo`
// (scripts/demo.sh) runs inside its network namespaces.
//
//	labecho serve -name backend-0 -http :80 -udp :53
//	labecho get http://10.32.0.61/
//	labecho udp 10.32.0.10:53
//
// The server answers every HTTP request and every UDP datagram with
// "<name> <remote ip:port>\n", so the demo can show which backend served a
// request and which source address it saw. The clients print the answer, or
// a one-line reason ("connection refused", "timeout", ...) and exit 1.
// It uses only the standard library.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

// timeout bounds every client dial and round trip: in a lab a healthy path
// answers in milliseconds.
const timeout = 2 * time.Second

const usage = `usage:
  labecho serve -name NAME [-http ADDR] [-udp ADDR]
  labecho get URL
  labecho udp HOST:PORT`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, usage)
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "serve":
		err = serve(os.Args[2:])
	case "get":
		if len(os.Args) != 3 {
			fmt.Fprintln(os.Stderr, usage)
			os.Exit(2)
		}
		err = get(os.Args[2])
	case "udp":
		if len(os.Args) != 3 {
			fmt.Fprintln(os.Stderr, usage)
			os.Exit(2)
		}
		err = udp(os.Args[2])
	case "-h", "-help", "--help", "help":
		fmt.Println(usage)
		return
	default:
		fmt.Fprintf(os.Stderr, "labecho: unknown mode %q\n%s\n", os.Args[1], usage)
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func serve(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	name := fs.String("name", "", "the name every answer starts with")
	httpAddr := fs.String("http", "", "serve HTTP on this address (e.g. :80)")
	udpAddr := fs.String("udp", "", "echo UDP on this address (e.g. :53)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *name == "" || (*httpAddr == "" && *udpAddr == "") {
		return errors.New("labecho serve: need -name and at least one of -http, -udp")
	}
	errc := make(chan error, 2)
	if *httpAddr != "" {
		ln, err := net.Listen("tcp", *httpAddr)
		if err != nil {
			return fmt.Errorf("labecho serve: %v", err)
		}
		srv := &http.Server{
			Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Connection", "close")
				fmt.Fprintf(w, "%s %s\n", *name, r.RemoteAddr)
			}),
			ReadHeaderTimeout: 5 * time.Second,
		}
		go func() { errc <- srv.Serve(ln) }()
	}
	if *udpAddr != "" {
		pc, err := net.ListenPacket("udp", *udpAddr)
		if err != nil {
			return fmt.Errorf("labecho serve: %v", err)
		}
		go func() { errc <- echoUDP(pc, *name) }()
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	select {
	case <-sig:
		return nil
	case err := <-errc:
		return fmt.Errorf("labecho serve: %v", err)
	}
}

// echoUDP answers each datagram from the socket it arrived on. The demo's
// backends have one address each, so the reply's source is the address the
// (DNATed) request was sent to.
func echoUDP(pc net.PacketConn, name string) error {
	buf := make([]byte, 64<<10)
	for {
		_, from, err := pc.ReadFrom(buf)
		if err != nil {
			return err
		}
		_, _ = pc.WriteTo([]byte(fmt.Sprintf("%s %s\n", name, from)), from)
	}
}

func get(url string) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("GET %s: %v", url, err)
	}
	client := &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("GET %s: %s", url, reason(err))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("GET %s: reading body: %s", url, reason(err))
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	fmt.Print(ensureNewline(string(body)))
	return nil
}

func udp(addr string) error {
	c, err := net.DialTimeout("udp", addr, timeout)
	if err != nil {
		return fmt.Errorf("udp %s: %s", addr, reason(err))
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(timeout)); err != nil {
		return fmt.Errorf("udp %s: %v", addr, err)
	}
	if _, err := c.Write([]byte("labecho\n")); err != nil {
		return fmt.Errorf("udp %s: %s", addr, reason(err))
	}
	buf := make([]byte, 64<<10)
	n, err := c.Read(buf)
	if err != nil {
		return fmt.Errorf("udp %s: %s", addr, reason(err))
	}
	fmt.Print(ensureNewline(string(buf[:n])))
	return nil
}

// reason turns a network error into the short words an operator expects.
func reason(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.EHOSTUNREACH):
		return "no route to host"
	case errors.Is(err, syscall.ENETUNREACH):
		return "network unreachable"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset"
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	}
	// Keep it on one line whatever the cause.
	return strings.Join(strings.Fields(err.Error()), " ")
}

func ensureNewline(s string) string {
	if strings.HasSuffix(s, "\n") {
		return s
	}
	return s + "\n"
}
