package healthcheck

import (
	"net/netip"
	"testing"
)

// Reopen replaces every port's listeners with new ones for the same
// services: the old server is closed, and the port answers as before.
func TestReopen(t *testing.T) {
	s := &Server{}
	defer s.Close()
	port := freePort(t)
	if err := s.Sync([]Service{{Namespace: "default", Name: "web", Port: port, LocalEndpoints: 2}}); err != nil {
		t.Fatal(err)
	}
	// Answered: the server serves its listener, which closing it closes
	// at once (the new one binds the same port in the same namespace).
	if code, _ := get(t, port); code != 200 {
		t.Fatalf("before Reopen: %d", code)
	}
	old := s.ports[port].srvs[netip.Addr{}]
	if err := s.Reopen(); err != nil {
		t.Fatal(err)
	}
	now := s.ports[port].srvs[netip.Addr{}]
	if now == nil || now == old {
		t.Fatalf("the port's server was not replaced: %p, was %p", now, old)
	}
	if code, a := get(t, port); code != 200 || a.Service.Name != "web" || a.LocalEndpoints != 2 {
		t.Fatalf("after Reopen: %d %+v", code, a)
	}
}
