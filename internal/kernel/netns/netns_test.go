package netns

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/svcnat/svcnat/internal/testns"
)

// A process started inside Do runs in the namespace (Go forks from the
// locked thread), and the threads go back: processes started outside it,
// concurrently and afterwards, run in the caller's namespace.
func TestDoExec(t *testing.T) {
	ns := testns.New(t)
	ns.MustExec(t, "*filter\n:SVCNAT-MARKER - [0:0]\nCOMMIT\n", "iptables-nft-restore", "--noflush")
	inside := strings.TrimSpace(ns.MustExec(t, "", "readlink", "/proc/self/ns/net"))
	host, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	if inside == host {
		t.Fatal("test namespace is the host's")
	}

	var dumpInside []byte
	err = Do(ns.Name, func() error {
		var err error
		dumpInside, err = exec.Command("iptables-nft-save", "-t", "filter").Output()
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(dumpInside), ":SVCNAT-MARKER - [0:0]") {
		t.Errorf("iptables-nft-save run through Do does not see the namespace's chain:\n%s", dumpInside)
	}

	var wg sync.WaitGroup
	errs := make(chan string, 200)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 10; i++ {
				var got []byte
				want := host
				if i%2 == 0 {
					want = inside
					if err := Do(ns.Name, func() (err error) {
						got, err = exec.Command("readlink", "/proc/self/ns/net").Output()
						return err
					}); err != nil {
						errs <- err.Error()
						continue
					}
				} else {
					got, _ = exec.Command("readlink", "/proc/self/ns/net").Output()
				}
				if s := strings.TrimSpace(string(got)); s != want {
					errs <- "child ran in " + s + ", want " + want
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

func TestDoErrors(t *testing.T) {
	if err := Do("svcnat-no-such-namespace", func() error { return nil }); err == nil ||
		!strings.Contains(err.Error(), "svcnat-no-such-namespace") {
		t.Errorf("missing namespace: %v", err)
	}
	called := false
	if err := Do("", func() error { called = true; return nil }); err != nil || !called {
		t.Errorf("empty name should run fn directly: %v", err)
	}
}

// The addresses Listen and Dial take: an IP and a port, or for a listener
// a port alone; never a name, which Go would resolve outside the namespace.
func TestLiteralAddr(t *testing.T) {
	for _, c := range []struct {
		addr     string
		wildcard bool
		want     string // "" accepted, else part of the error
	}{
		{"10.96.0.10:80", false, ""},
		{"[fd00::10]:53", false, ""},
		{"127.0.0.1:9823", true, ""},
		{":9823", true, ""},
		{"[::]:9823", true, ""},
		{":9823", false, "no IP address"},
		{"localhost:9823", true, `"localhost" is not an IP address`},
		{"nginx.local:80", false, `"nginx.local" is not an IP address`},
		{"10.96.0.10:http", false, "is not a number"},
		{"10.96.0.10:0", false, "is not a number"},
		{"10.96.0.10:65536", false, "is not a number"},
		{"10.96.0.10", false, "is not IP:PORT"},
		{"[fe80::1%eth0]:80", false, "zone"},
	} {
		err := LiteralAddr(c.addr, c.wildcard)
		if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
			t.Errorf("LiteralAddr(%q, %v) = %v, want %q", c.addr, c.wildcard, err, c.want)
		}
	}
	if _, err := Listen("", "tcp", "localhost:0"); err == nil {
		t.Error("Listen accepted a host name")
	}
	if _, err := Dial(context.Background(), "", "tcp", "localhost:80"); err == nil {
		t.Error("Dial accepted a host name")
	}
}

// sockNetNS is the inode of the network namespace socket c belongs to
// (ioctl SIOCGSKNS), the same as stat(2) of that namespace's file.
func sockNetNS(c syscall.Conn) (uint64, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return 0, err
	}
	nsfd, ierr := -1, error(nil)
	if err := rc.Control(func(fd uintptr) { nsfd, ierr = unix.IoctlRetInt(int(fd), unix.SIOCGSKNS) }); err != nil {
		return 0, err
	}
	if ierr != nil {
		return 0, fmt.Errorf("SIOCGSKNS: %w", ierr)
	}
	defer unix.Close(nsfd)
	var st unix.Stat_t
	err = unix.Fstat(nsfd, &st)
	return st.Ino, err
}

func nsInode(t *testing.T, path string) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

// Sockets made by Listen and Dial belong to the namespace asked for, also
// when many are made at once, from many goroutines, mixed with sockets of
// svcnat's own namespace: an address that exists only in the namespace is
// reached, and the sockets' namespace is read back from the kernel.
func TestListenAndDialInNetNS(t *testing.T) {
	ns := testns.New(t)
	ns.MustExec(t, "", "ip", "addr", "add", "10.99.0.1/32", "dev", "lo")
	inside, host := nsInode(t, "/run/netns/"+ns.Name), nsInode(t, "/proc/self/ns/net")
	if inside == host {
		t.Fatal("test namespace is the host's")
	}
	var wg sync.WaitGroup
	errs := make(chan string, 100)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 6; i++ {
				name, want := ns.Name, inside
				if i%3 == 2 {
					name, want = "", host
				}
				addr := "10.99.0.1:0"
				if name == "" {
					addr = "127.0.0.1:0"
				}
				ln, err := Listen(name, "tcp", addr)
				if err != nil {
					errs <- err.Error()
					continue
				}
				c, err := Dial(context.Background(), name, "tcp", ln.Addr().String())
				if err != nil {
					errs <- err.Error()
				} else {
					if got, err := sockNetNS(c.(*net.TCPConn)); got != want {
						errs <- fmt.Sprintf("Dial(%q): socket in namespace %d (%v), want %d", name, got, err, want)
					}
					c.Close()
				}
				if got, err := sockNetNS(ln.(*net.TCPListener)); got != want {
					errs <- fmt.Sprintf("Listen(%q): socket in namespace %d (%v), want %d", name, got, err, want)
				}
				ln.Close()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}
