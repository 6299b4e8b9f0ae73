// Package netns is svcnat's one way into a network namespace: it runs a
// call on a thread that has entered one (Do), makes listening and
// dialling sockets that belong to one (Listen, Dial, and Dialer for many
// dials; LiteralAddr is the address check they share), lists the host's addresses in one
// (InterfaceAddrs) and names one by an identity that a namespace made
// again under the same name does not share (Identity). A namespace is named as --netns names
// it: an `ip netns` name, a path to a namespace file, or "" for svcnat's
// own. It creates and deletes none and knows nothing of rules: the
// iptables runner, conntrack, probes, the health-check node ports, the
// --metrics-addr listener and the test lab all go through it.
package netns

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"strconv"
	"strings"
	"syscall"

	vnetns "github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// init keeps the main goroutine on the main thread (the process's first,
// whose namespace /proc/self/ns/net and /proc/net name, and Open("")
// opens) for the life of the program, so that no other goroutine ever
// runs there: a thread that cannot leave a namespace stays locked to its
// goroutine (Do, Dialer), and the runtime, which ends such a thread with
// its goroutine, never ends the main thread: it would stay in the
// namespace for good, and /proc/self would name that namespace as
// svcnat's own. Go runs main on the thread an init locked.
func init() { runtime.LockOSThread() }

// Do runs fn on an OS thread that has entered the named network
// namespace (a name as `ip netns` makes them, or an absolute path to a
// namespace file), then returns the thread to its namespace. An empty name
// runs fn directly.
//
// Network namespaces belong to threads, not processes, so fn runs on its
// own goroutine locked to its thread. What fn does on that goroutine sees
// the namespace: sockets it opens, /proc/sys/net it reads, and child
// processes it starts with os/exec, since Go forks from the calling thread
// and the child inherits that thread's namespace (TestDoExec checks
// this). Goroutines fn starts do not, and neither do Go's name lookups,
// which run on goroutines of their own: sockets are best made with Listen
// and Dial, which refuse names. fn must not call t.Fatal.
//
// If the thread cannot be returned to its namespace it stays locked, so the
// runtime destroys it when the goroutine ends instead of reusing a thread
// in the wrong namespace.
func Do(name string, fn func() error) error {
	if name == "" {
		return fn()
	}
	target, err := Open(name)
	if err != nil {
		return err
	}
	defer target.Close()
	return do(target, name, fn)
}

// do is Do in the namespace target, which name names in errors.
func do(target vnetns.NsHandle, name string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := vnetns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("reading the current network namespace: %w", err)
			return
		}
		defer orig.Close()
		if err := vnetns.Set(target); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("entering network namespace %s: %w", name, err)
			return
		}
		fnErr := runRecovered(fn)
		if err := vnetns.Set(orig); err != nil {
			errc <- errors.Join(fnErr, fmt.Errorf("leaving network namespace %s: %w", name, err))
			return // still locked: the thread dies with the goroutine
		}
		runtime.UnlockOSThread()
		errc <- fnErr
	}()
	return <-errc
}

// Listen opens a stream listener (network "tcp", "tcp4" or "tcp6", as for
// net.Listen) on addr inside the named network namespace ("" for svcnat's
// own). The socket is made inside Do's callback, on the thread locked
// in the namespace, and a socket keeps the namespace it was made in:
// serving it from any goroutine afterwards stays there.
//
// addr must be an IP address and port or a port alone (":9823", every
// address): see LiteralAddr.
func Listen(name, network, addr string) (net.Listener, error) {
	if err := LiteralAddr(addr, true); err != nil {
		return nil, err
	}
	var ln net.Listener
	err := Do(name, func() (err error) {
		ln, err = net.Listen(network, addr)
		return err
	})
	return ln, err
}

// Dial connects to addr, an IP address and port (see LiteralAddr), from
// the named network namespace, as net.Dialer.DialContext does. The socket
// is made inside Do's callback: with one literal address the dialer
// neither resolves nor races a second address on another goroutine, so
// socket(2) runs on the locked thread. The connection keeps that
// namespace when used from any goroutine. It sets no TCP keepalive. A
// caller that dials into one namespace often uses a Dialer.
func Dial(ctx context.Context, name, network, addr string) (net.Conn, error) {
	if err := LiteralAddr(addr, false); err != nil {
		return nil, err
	}
	d := dialer()
	var c net.Conn
	err := Do(name, func() (err error) {
		c, err = d.DialContext(ctx, network, addr)
		return err
	})
	return c, err
}

var errNoLookups = errors.New("svcnat resolves no host names")

// dialer is the net.Dialer of Dial and Dialer: a resolver that cannot be
// reached (should anything still ask for a name, the lookup fails instead
// of leaving the namespace), and no TCP keepalive (a probe's or a check's
// connection lasts one exchange, and turning it on is four system calls
// per dial).
func dialer() *net.Dialer {
	return &net.Dialer{KeepAlive: -1, Resolver: &net.Resolver{PreferGo: true, Dial: func(context.Context, string, string) (net.Conn, error) {
		return nil, errNoLookups
	}}}
}

// LiteralAddr checks that addr is an IP address and a port
// ("10.96.0.10:80", "[fd00::10]:80"), or, with wildcard, a port alone
// (":9823"), and not a host name. Names are refused, not resolved: Go
// resolves them on threads of svcnat's own namespace, so a lookup for a
// socket meant to live in --netns would send DNS queries from the host's
// namespace to the host's resolver. An IPv6 zone is refused too: its
// index would be read from the wrong namespace. The error names the part
// that is wrong; the caller names the flag.
func LiteralAddr(addr string, wildcard bool) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q is not IP:PORT: %w", addr, err)
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || (n == 0 && !wildcard) {
		return fmt.Errorf("port %q is not a number from 1 to 65535", port)
	}
	if host == "" && wildcard {
		return nil
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		if host == "" {
			return fmt.Errorf("%q has no IP address", addr)
		}
		return fmt.Errorf("%q is not an IP address (host names are not resolved)", host)
	}
	if ip.Zone() != "" {
		return fmt.Errorf("%q: an IPv6 zone (%%%s) is not supported", host, ip.Zone())
	}
	return nil
}

func runRecovered(fn func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic in network namespace: %v", r)
		}
	}()
	return fn()
}

// Open opens the network namespace name names: an `ip netns` name,
// a path to a namespace file (/proc/PID/ns/net), or "" for svcnat's own.
// The caller closes the handle. It is how every part of svcnat opens one.
func Open(name string) (vnetns.NsHandle, error) {
	var h vnetns.NsHandle
	var err error
	switch {
	case name == "":
		h, err = vnetns.GetFromPath("/proc/self/ns/net")
	case strings.Contains(name, "/"):
		h, err = vnetns.GetFromPath(name)
	default:
		h, err = vnetns.GetFromName(name)
	}
	if err != nil {
		return vnetns.None(), fmt.Errorf("opening network namespace %s: %w", name, err)
	}
	return h, nil
}

// Dialer dials from one network namespace, as Dial does, for a caller
// that dials there often (the endpoint checker, 25,000 times a second at
// 10,000 services): Dial opens the namespace and starts a thread of its
// own to enter it and leave it, per dial, which costs more than the
// connection. A Dialer keeps the namespace and svcnat's own open, and
// moves the calling goroutine's own thread into the namespace for
// socket(2) alone (a socket keeps the namespace it was made in), and back
// before connect(2): the rest of the dial, and the wait for the
// connection, run as any dial does, on any thread.
//
// A Dialer stays with the namespace it opened, also after the name was
// deleted and made again; its Identity says which one it is. It may be
// used from many goroutines at once; Close it when none uses it.
type Dialer struct {
	name        string
	target, own vnetns.NsHandle
	id          string
}

// NewDialer opens the namespace name names now (as Open takes it).
func NewDialer(name string) (*Dialer, error) {
	target, err := Open(name)
	if err != nil {
		return nil, err
	}
	id, err := handleIdentity(target, name)
	if err != nil {
		target.Close()
		return nil, err
	}
	own, err := Open("")
	if err != nil {
		target.Close()
		return nil, err
	}
	return &Dialer{name: name, target: target, own: own, id: id}, nil
}

// Identity is the Identity of the namespace d dials from.
func (d *Dialer) Identity() string { return d.id }

// Close closes d's namespace handles.
func (d *Dialer) Close() error {
	return errors.Join(d.target.Close(), d.own.Close())
}

// ErrStuck is in the error of a Dialer's dial whose thread could not go
// back to svcnat's own namespace. The thread stays locked to the calling
// goroutine, in d's namespace, and the runtime ends it with the
// goroutine: a goroutine that gets it should end.
var ErrStuck = errors.New("the thread is left locked in the namespace")

// DialContext connects to addr, an IP address and port (see LiteralAddr),
// from d's namespace, as Dial does.
func (d *Dialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	if err := LiteralAddr(addr, false); err != nil {
		return nil, err
	}
	runtime.LockOSThread()
	if err := unix.Setns(int(d.target), unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return nil, fmt.Errorf("entering network namespace %s: %w", d.name, err)
	}
	in := true
	leave := func() error {
		if !in {
			return nil
		}
		if err := unix.Setns(int(d.own), unix.CLONE_NEWNET); err != nil {
			return fmt.Errorf("leaving network namespace %s: %w (%w)", d.name, err, ErrStuck)
		}
		in = false
		runtime.UnlockOSThread()
		return nil
	}
	nd := dialer()
	// Called once the socket is made, before it connects; with one
	// literal address there is one socket.
	nd.ControlContext = func(context.Context, string, string, syscall.RawConn) error { return leave() }
	c, err := nd.DialContext(ctx, network, addr)
	if lerr := leave(); lerr != nil { // the socket was not made
		if c != nil {
			c.Close()
		}
		return nil, errors.Join(err, lerr)
	}
	return c, err
}

// Identity names the network namespace name names now (as Open takes
// it), whatever the path to it: by its cookie ("c4096"),
// which the kernel gives no other namespace until it reboots, or, on
// kernels before 5.14, which have none, by its nsfs device and inode
// ("4-4026531840"), which a namespace made after this one died may get
// again. A namespace deleted and made again under its name has another
// identity. A name whose file is not (yet) a namespace — gone, or made
// but not mounted yet — is an error.
func Identity(name string) (string, error) {
	h, err := Open(name)
	if err != nil {
		return "", err
	}
	defer h.Close()
	return handleIdentity(h, name)
}

// handleIdentity is Identity of h, opened for name.
func handleIdentity(h vnetns.NsHandle, name string) (string, error) {
	if err := isNamespace(h, name); err != nil {
		return "", err
	}
	if name == "" {
		return identity(h, name)
	}
	var id string
	err := do(h, name, func() (err error) {
		id, err = identity(h, name)
		return err
	})
	if err != nil {
		// Not entered: the device and inode say who it is.
		return devIno(h, name)
	}
	return id, nil
}

// isNamespace checks that h, opened for name, is a namespace file.
func isNamespace(h vnetns.NsHandle, name string) error {
	var fs unix.Statfs_t
	if err := unix.Fstatfs(int(h), &fs); err != nil {
		return fmt.Errorf("network namespace %s: %w", name, err)
	}
	if fs.Type != unix.NSFS_MAGIC {
		return fmt.Errorf("network namespace %s: not a namespace file", name)
	}
	return nil
}

// identity is Identity of h, the namespace the calling thread is in: its
// cookie, read from a socket made here, or its device and inode.
func identity(h vnetns.NsHandle, name string) (string, error) {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err == nil {
		cookie, err := unix.GetsockoptUint64(fd, unix.SOL_SOCKET, unix.SO_NETNS_COOKIE)
		unix.Close(fd)
		if err == nil {
			return fmt.Sprintf("c%d", cookie), nil
		}
	}
	return devIno(h, name)
}

func devIno(h vnetns.NsHandle, name string) (string, error) {
	var st unix.Stat_t
	if err := unix.Fstat(int(h), &st); err != nil {
		return "", fmt.Errorf("identifying network namespace %s: %w", name, err)
	}
	return fmt.Sprintf("%d-%d", st.Dev, st.Ino), nil
}

// InterfaceAddrs lists the addresses of the interfaces in the named network
// namespace ("" for svcnat's own): the addresses the addrtype LOCAL match
// sees as the host's, which decide node_port_addresses' rules and whether a
// load-balancer source range admits the node.
func InterfaceAddrs(name string) ([]netip.Addr, error) {
	var out []netip.Addr
	err := Do(name, func() error {
		addrs, err := net.InterfaceAddrs()
		if err != nil {
			return err
		}
		for _, a := range addrs {
			if p, err := netip.ParsePrefix(a.String()); err == nil {
				out = append(out, p.Addr())
			}
		}
		return nil
	})
	return out, err
}
