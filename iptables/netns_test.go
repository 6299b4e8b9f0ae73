package iptables

import (
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"

	"github.com/svcnat/svcnat/internal/testns"
)

// A process started inside InNetNS runs in the namespace (Go forks from the
// locked thread), and the threads go back: processes started outside it,
// concurrently and afterwards, run in the caller's namespace.
func TestInNetNSExec(t *testing.T) {
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
	err = InNetNS(ns.Name, func() error {
		var err error
		dumpInside, err = exec.Command("iptables-nft-save", "-t", "filter").Output()
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(dumpInside), ":SVCNAT-MARKER - [0:0]") {
		t.Errorf("iptables-nft-save run through InNetNS does not see the namespace's chain:\n%s", dumpInside)
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
					if err := InNetNS(ns.Name, func() (err error) {
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

func TestInNetNSErrors(t *testing.T) {
	if err := InNetNS("svcnat-no-such-namespace", func() error { return nil }); err == nil ||
		!strings.Contains(err.Error(), "svcnat-no-such-namespace") {
		t.Errorf("missing namespace: %v", err)
	}
	called := false
	if err := InNetNS("", func() error { called = true; return nil }); err != nil || !called {
		t.Errorf("empty name should run fn directly: %v", err)
	}
	if _, err := New(Options{Backend: NFT, NetNS: "svcnat-no-such-namespace"}); err == nil {
		t.Error("New accepted a missing namespace")
	}
}
