//go:build linux

package integration

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/svcnat/svcnat/integration/netlab"
	"github.com/svcnat/svcnat/internal/bench"
	"github.com/svcnat/svcnat/internal/kernel/netns"
	"github.com/svcnat/svcnat/internal/testns"
)

// checksWindow is how long BenchmarkReconcileChecks watches the daemon
// check its endpoints: 10 rounds of the 2 s interval.
const checksWindow = 20 * time.Second

// BenchmarkReconcileChecks is issue 25's last measure: the CPU of svcnat
// reconcile checking every endpoint of make bench's configuration
// (SVCNAT_BENCH_N services × SVCNAT_BENCH_E endpoints, 10,000 × 5 by
// default) with a tcp health_check every 2 s, so 25,000 checks a second
// at the default size. The daemon works on a lab's node namespace, on
// iptables-nft and on nftables, from outside it (netns: --netns, as
// deployed) and from inside (inside: started in it by ip netns exec,
// without --netns: the baseline of checks that enter no namespace). The
// node's route to the endpoints' 10.64.0.0/10 leads to a sink namespace
// of the benchmark's own that takes every address of it as local and
// accepts on port 8080 (the generator's target port), so every check
// passes and no verdict changes the rules: what is measured is the
// checks. Once the first apply is done the daemon is watched for
// checksWindow: its CPU time (utime + stime of /proc/PID/stat) over the
// window, as cores and per check; its peak RSS (VmHWM) at the end; and
// the checks it counted (svcnat_health_checks_total) per second, and the
// share that failed. Each runs once (b.N is not used): the window is the
// measure. docs/PERFORMANCE.md records it.
//
// The node's conntrack keeps a closed connection in TIME_WAIT for 120 s by
// default, which at 25,000 checks a second fills the host's table
// (nf_conntrack_max, 262,144 here) in ten seconds, after which new checks
// are dropped: the node namespace keeps them 1 s, as a node running this
// many checks must (docs/PERFORMANCE.md).
func BenchmarkReconcileChecks(b *testing.B) {
	for _, backend := range []string{"nft", "nftables"} {
		for _, mode := range []string{"netns", "inside"} {
			b.Run(backend+"/"+mode, func(b *testing.B) { reconcileChecks(b, backend, mode == "inside") })
		}
	}
}

func reconcileChecks(b *testing.B, backend string, inside bool) {
	spec := bench.FromEnv(b)
	lab := netlab.New(b, netlab.Options{HTTPPorts: []int{}, UDPPorts: []int{}})
	sink := testns.New(b)
	node := lab.Node
	node.IP(b, "link", "add", "sink0", "type", "veth", "peer", "name", "eth0", "netns", sink.Name)
	node.IP(b, "addr", "add", "192.168.250.1/30", "dev", "sink0")
	node.IP(b, "link", "set", "sink0", "up")
	node.AddRoute(b, "10.64.0.0/10", "192.168.250.2")
	node.Sysctl(b, "net.netfilter.nf_conntrack_tcp_timeout_time_wait", "1")
	sink.MustExec(b, "", "ip", "addr", "add", "192.168.250.2/30", "dev", "eth0")
	sink.MustExec(b, "", "ip", "link", "set", "eth0", "up")
	sink.MustExec(b, "", "ip", "route", "add", "local", "10.64.0.0/10", "dev", "lo")
	ln, err := netns.Listen(sink.Name, "tcp", "0.0.0.0:8080")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	// The sink answers before the daemon starts: a check of any endpoint
	// from the node passes.
	if c, err := node.DialTCP("10.64.0.1:8080"); err != nil {
		b.Fatalf("the sink does not answer from the node: %v", err)
	} else {
		c.Close()
	}

	dir := b.TempDir()
	const hc = "  health_check {\n    protocol = \"tcp\"\n    interval = \"2s\"\n    timeout  = \"1s\"\n  }\n  port {\n"
	for name, body := range bench.Files(spec) {
		body = strings.ReplaceAll(body, "  port {\n", hc)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	sv := NewSvcnat(b, node.Name, dir, backend)
	sv.Env = append(sv.Env, "SVCNAT_NODE="+bench.Node)
	args := []string{"--interval", "1m", "--metrics-addr", "127.0.0.1:9826"}
	var d *daemon
	if inside {
		d = startDaemonInside(b, sv, args...)
	} else {
		d = startDaemon(b, sv, args...)
	}
	d.await(b, 5*time.Minute, "msg=applied", "event=start", "generation=1")
	pid := d.cmd.Process.Pid

	// /metrics has a series per endpoint (50,000 at 10,000 services),
	// rendered by a daemon whose CPU the checks take: it may take longer
	// than the lab's default timeout. Read outside the window.
	checks := func() (pass, fail float64) {
		mf := scrape(b, node.WithTimeout(time.Minute), "http://127.0.0.1:9826/metrics")
		return metric(mf, "svcnat_health_checks_total", "result=pass"), metric(mf, "svcnat_health_checks_total", "result=fail")
	}
	b.ResetTimer()
	pass0, fail0 := checks()
	cpu0, at0 := procCPU(b, pid), time.Now()
	time.Sleep(checksWindow)
	cpu1, at1 := procCPU(b, pid), time.Now()
	pass1, fail1 := checks()
	b.StopTimer()
	hwm := procStatusKiB(b, pid, "VmHWM")
	window := at1.Sub(at0).Seconds()
	done := pass1 + fail1 - pass0 - fail0
	b.ReportMetric((cpu1-cpu0).Seconds()/window, "cores")
	b.ReportMetric(float64(hwm)/1024, "peak-MiB")
	b.ReportMetric(done/window, "checks/s")
	if done > 0 {
		b.ReportMetric((fail1-fail0)/done, "failed/check")
		b.ReportMetric(float64((cpu1-cpu0).Microseconds())/done, "cpu-us/check")
	}
	b.ReportMetric(float64(spec.Services*spec.Endpoints)/2, "due-checks/s")
}

// startDaemonInside starts svcnat reconcile as startDaemon does, but
// inside sv's namespace (`ip netns exec`, which execs svcnat: the pid is
// svcnat's) and without --netns: the daemon's own namespace is the one
// its rules and checks are in, so it enters none.
func startDaemonInside(t testing.TB, sv *Svcnat, args ...string) *daemon {
	t.Helper()
	cmd := sv.Cmd(append([]string{"reconcile", "--log-format", "json"}, args...)...)
	for i, a := range cmd.Args {
		if a == "--netns" {
			cmd.Args = append(cmd.Args[:i:i], cmd.Args[i+2:]...)
			break
		}
	}
	ip, err := exec.LookPath("ip")
	if err != nil {
		t.Fatal(err)
	}
	cmd.Path, cmd.Args = ip, append([]string{"ip", "netns", "exec", sv.NetNS}, cmd.Args...)
	return startCmd(t, cmd)
}

// procCPU is the CPU time process pid has used, user and system
// (/proc/PID/stat's utime and stime, in clock ticks of 1/100 s: Go cannot
// ask sysconf(_SC_CLK_TCK), which is 100 on every Linux it runs on).
func procCPU(t testing.TB, pid int) time.Duration {
	t.Helper()
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	// Fields after the command name, which is in parentheses and may
	// hold spaces: state is field 3, utime 14, stime 15.
	fields := strings.Fields(string(raw[strings.LastIndexByte(string(raw), ')')+1:]))
	if len(fields) < 13 {
		t.Fatalf("/proc/%d/stat: %q", pid, raw)
	}
	var ticks int64
	for _, f := range fields[11:13] {
		n, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			t.Fatalf("/proc/%d/stat: %q: %v", pid, raw, err)
		}
		ticks += n
	}
	return time.Duration(ticks) * (time.Second / 100)
}

// procStatusKiB is the field of /proc/PID/status named key, in KiB.
func procStatusKiB(t testing.TB, pid int, key string) int64 {
	t.Helper()
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, key+":"); ok {
			n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				t.Fatalf("/proc/%d/status: %q: %v", pid, line, err)
			}
			return n
		}
	}
	t.Fatalf("/proc/%d/status has no %s", pid, key)
	return 0
}
