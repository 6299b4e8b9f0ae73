package healthcheck

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"testing"

	"github.com/svcnat/svcnat/internal/config"
)

// freePort is a port free to listen on every address, as the servers do:
// one free on 127.0.0.1 only may be the local port of a client
// connection in TIME_WAIT, and binding it everywhere then fails.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func get(t *testing.T, port int) (int, answer) {
	t.Helper()
	resp, err := http.Get("http://127.0.0.1:" + strconv.Itoa(port) + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var a answer
	if err := json.Unmarshal(b, &a); err != nil {
		t.Fatalf("body %q: %v", b, err)
	}
	if resp.Header.Get("Content-Type") != "application/json" {
		t.Errorf("content type %q", resp.Header.Get("Content-Type"))
	}
	return resp.StatusCode, a
}

func TestServer(t *testing.T) {
	healthy := true
	s := &Server{Healthy: func() bool { return healthy }}
	defer s.Close()
	port := freePort(t)
	svc := Service{Namespace: "default", Name: "web", Port: port, LocalEndpoints: 2}
	if err := s.Sync([]Service{svc}); err != nil {
		t.Fatal(err)
	}
	code, a := get(t, port)
	if code != 200 || a.Service.Namespace != "default" || a.Service.Name != "web" || a.LocalEndpoints != 2 || !a.ServiceProxyHealthy {
		t.Fatalf("with local endpoints: %d %+v", code, a)
	}
	svc.LocalEndpoints = 0
	s.Sync([]Service{svc})
	if code, a := get(t, port); code != 503 || a.LocalEndpoints != 0 {
		t.Fatalf("without local endpoints: %d %+v", code, a)
	}
	svc.LocalEndpoints, healthy = 1, false
	s.Sync([]Service{svc})
	if code, a := get(t, port); code != 503 || a.ServiceProxyHealthy {
		t.Fatalf("svcnat unhealthy: %d %+v", code, a)
	}
	s.Sync(nil)
	if _, err := http.Get("http://127.0.0.1:" + strconv.Itoa(port) + "/"); err == nil {
		t.Fatal("a port of a service that is gone still answers")
	}
}

func TestServicesNodePortAddresses(t *testing.T) {
	cidrs := []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}
	cfg := &config.Config{Settings: config.Settings{NodePortAddresses: cidrs}, Services: []*config.Service{{
		Name: "default/web", ExternalTrafficPolicy: config.PolicyLocal, HealthCheckNodePort: 30500,
		Endpoints: []*config.Endpoint{{Address: netip.MustParseAddr("10.64.1.2"), Node: "node1", Ready: true}},
	}}}
	got := Services(cfg, "node1")
	if len(got) != 1 || got[0].LocalEndpoints != 1 || !slices.Equal(got[0].NodePortAddresses, cidrs) {
		t.Fatalf("Services: %+v", got)
	}
}
