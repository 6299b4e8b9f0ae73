package iptables

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"strings"

	"github.com/vishvananda/netns"
)

// InNetNS runs fn on an OS thread that has entered the named network
// namespace (a name as `ip netns` makes them, or an absolute path to a
// namespace file), then returns the thread to its namespace. An empty name
// runs fn directly.
//
// Network namespaces belong to threads, not processes, so fn runs on its
// own goroutine locked to its thread. What fn does on that goroutine sees
// the namespace: sockets it opens, /proc/sys/net it reads, and child
// processes it starts with os/exec, since Go forks from the calling thread
// and the child inherits that thread's namespace (TestInNetNSExec checks
// this). Goroutines fn starts do not. fn must not call t.Fatal.
//
// If the thread cannot be returned to its namespace it stays locked, so the
// runtime destroys it when the goroutine ends instead of reusing a thread
// in the wrong namespace.
func InNetNS(name string, fn func() error) error {
	if name == "" {
		return fn()
	}
	target, err := openNetNS(name)
	if err != nil {
		return err
	}
	defer target.Close()

	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("reading the current network namespace: %w", err)
			return
		}
		defer orig.Close()
		if err := netns.Set(target); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("entering network namespace %s: %w", name, err)
			return
		}
		fnErr := runRecovered(fn)
		if err := netns.Set(orig); err != nil {
			errc <- errors.Join(fnErr, fmt.Errorf("leaving network namespace %s: %w", name, err))
			return // still locked: the thread dies with the goroutine
		}
		runtime.UnlockOSThread()
		errc <- fnErr
	}()
	return <-errc
}

func runRecovered(fn func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic in network namespace: %v", r)
		}
	}()
	return fn()
}

// openNetNS opens a namespace by `ip netns` name or by path.
func openNetNS(name string) (netns.NsHandle, error) {
	var h netns.NsHandle
	var err error
	if strings.Contains(name, "/") {
		h, err = netns.GetFromPath(name)
	} else {
		h, err = netns.GetFromName(name)
	}
	if err != nil {
		return netns.None(), fmt.Errorf("opening network namespace %s: %w", name, err)
	}
	return h, nil
}

// InterfaceAddrs lists the addresses of the interfaces in the named network
// namespace ("" for svcnat's own): the addresses the addrtype LOCAL match
// sees as the host's, which decide node_port_addresses' rules and whether a
// load-balancer source range admits the node.
func InterfaceAddrs(name string) ([]netip.Addr, error) {
	var out []netip.Addr
	err := InNetNS(name, func() error {
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
