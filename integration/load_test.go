//go:build linux

package integration

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/svcnat/svcnat/integration/netlab"
)

// Faults under load (nft): changes applied while a client keeps
// connecting, SIGKILL in the middle of an apply, two concurrent applies,
// and Docker-like foreign rules that must keep working throughout. Each
// test is bounded in count and time.

// TestLoadChurn applies 50 changes — to other services and to the endpoint
// set of the service under load — while a client opens a fresh TCP
// connection per request to that service. The two endpoints that stay, and
// the third one while it is in the set, must answer every request.
func TestLoadChurn(t *testing.T) {
	t.Parallel()
	tl := newTrafficLab(t, "nft", netlab.Options{Backends: 3, HTTPPorts: []int{80, 8080}, UDPPorts: []int{}})

	const changes = 50
	st := trChurnState{}
	tl.apply(t, nil, st.services()...)
	steady := trURL("10.32.0.61", 80)
	what := "default/steady 10.32.0.61:80 (endpoints backend-0 and backend-1 stay, backend-2 comes and goes)"
	trGet(t, tl.Client.NS, steady, what)

	type failure struct {
		at     time.Duration
		change int
		err    error
	}
	var (
		mu       sync.Mutex
		change   int // the change being applied
		failures []failure
		answers  = map[string]int{}
		requests int
	)
	stop := make(chan struct{})
	done := make(chan struct{})
	start := time.Now()
	go func() {
		defer close(done)
		// At most 20 s of load, whatever the applies do.
		deadline := start.Add(20 * time.Second)
		for time.Now().Before(deadline) {
			select {
			case <-stop:
				return
			default:
			}
			body, err := tl.Client.HTTPGet(steady)
			mu.Lock()
			requests++
			name, _ := netlab.ParseReply(body)
			switch {
			case err != nil:
				failures = append(failures, failure{time.Since(start), change, err})
			case trBackendIndex(name) < 0:
				failures = append(failures, failure{time.Since(start), change, fmt.Errorf("unexpected answer %q", body)})
			default:
				answers[name]++
			}
			mu.Unlock()
		}
	}()

	applyStart := time.Now()
	for i := 1; i <= changes; i++ {
		st.step(i)
		mu.Lock()
		change = i
		mu.Unlock()
		tl.configure(t, st.services()...)
		r := tl.SV.Run(t, "apply", "-auto-approve")
		if r.Code != 0 || !strings.Contains(r.Stdout, "Apply complete!") {
			close(stop)
			<-done
			t.Fatalf("change %d (%s): svcnat apply: want exit 0 and a change applied, got %s", i, st.last, r)
		}
	}
	applyTime := time.Since(applyStart)
	close(stop)
	<-done
	tl.SV.MustRun(t, 0, "plan", "--detailed-exitcode")

	mu.Lock()
	defer mu.Unlock()
	t.Logf("%d changes applied in %v (%v each); %d requests during them: %s, %d failed",
		changes, applyTime.Round(time.Millisecond), (applyTime / changes).Round(time.Millisecond), requests, trFmtCounts(answers), len(failures))
	for i, f := range failures {
		if i == 10 {
			t.Errorf("... and %d more", len(failures)-10)
			break
		}
		t.Errorf("%s: request at %v, during change %d: %v", trPacket(tl.Client.NS, "tcp", steady, what), f.at.Round(time.Millisecond), f.change, f.err)
	}
	if requests < 50 {
		t.Errorf("only %d requests were made during the changes; the load proves little", requests)
	}
	if answers["backend-0"] == 0 || answers["backend-1"] == 0 {
		t.Errorf("the endpoints that stay did not both answer: %s", trFmtCounts(answers))
	}
}

// trChurnState is the configuration TestLoadChurn walks through: the steady
// service, whose third endpoint comes and goes, and six other services that
// appear, disappear and change endpoints and ports.
type trChurnState struct {
	extra  bool // backend-2 is an endpoint of default/steady
	others [6]struct {
		present bool
		eps     int // 0..3 endpoints (0: REJECT rules)
		port    int // 0: 80, 1: 8080 (target port)
	}
	last string // what the last step changed
}

func (s *trChurnState) step(i int) {
	if i%5 == 0 {
		s.extra = !s.extra
		s.last = fmt.Sprintf("default/steady: backend-2 in the endpoint set: %v", s.extra)
		return
	}
	k := i % len(s.others)
	o := &s.others[k]
	switch {
	case !o.present || i%7 == 0:
		o.present = !o.present
		s.last = fmt.Sprintf("default/other-%d present: %v", k, o.present)
	case i%2 == 0 || o.eps == 0: // a target port change of a service without endpoints changes no rule
		o.eps = (o.eps + 1) % 4
		s.last = fmt.Sprintf("default/other-%d has %d endpoints", k, o.eps)
	default:
		o.port = 1 - o.port
		s.last = fmt.Sprintf("default/other-%d target port index %d", k, o.port)
	}
}

func (s *trChurnState) services() []trService {
	steadyEPs := []string{trBackendIP4(0), trBackendIP4(1)}
	if s.extra {
		steadyEPs = append(steadyEPs, trBackendIP4(2))
	}
	out := []trService{trWeb("default/steady", "10.32.0.61", trEndpoints("node1", steadyEPs...)...)}
	for k, o := range s.others {
		if !o.present {
			continue
		}
		var addrs []string
		for j := 0; j < o.eps; j++ {
			addrs = append(addrs, trBackendIP4((k+j)%3))
		}
		svc := trWeb(fmt.Sprintf("default/other-%d", k), fmt.Sprintf("10.32.1.%d", k+1), trEndpoints("node1", addrs...)...)
		svc.Ports[0].Target = []int{80, 8080}[o.port]
		out = append(out, svc)
	}
	return out
}

// trManyServices is a configuration of n services (cluster IPs
// 10.32.<base>.x) with endpoints on the backends chosen by variant, big
// enough that an apply takes a while to write.
func trManyServices(n, base, variant, backends int) []trService {
	var out []trService
	for i := 0; i < n; i++ {
		var addrs []string
		eps := 1 + (i+variant)%backends
		if variant%2 == 1 && i%10 == 3 {
			// No endpoints: REJECT rules in the filter table, so the
			// variants differ in both tables.
			eps = 0
		}
		for j := 0; j < eps; j++ {
			addrs = append(addrs, trBackendIP4((i+j+variant)%backends))
		}
		svc := trWeb(fmt.Sprintf("default/svc-%d", i), fmt.Sprintf("10.32.%d.%d", base+i/250, 1+i%250), trEndpoints("node1", addrs...)...)
		if (i+variant)%4 == 0 {
			svc.Ports = append(svc.Ports, trPort{Name: "alt", Port: 8080})
		}
		out = append(out, svc)
	}
	return out
}

// trWaitNSIdle waits until no process runs in the node namespace any more:
// after svcnat is killed, an iptables-restore it started may still be
// finishing its transaction.
func trWaitNSIdle(t testing.TB, ns netlab.NS) {
	t.Helper()
	netlab.Eventually(t, 10*time.Second, func() error {
		out, err := exec.Command(trIPTool(), "netns", "pids", ns.Name).Output()
		if err != nil {
			return fmt.Errorf("ip netns pids %s: %w", ns.Name, err)
		}
		if strings.TrimSpace(string(out)) != "" {
			return fmt.Errorf("netns %s: processes still running: %s", ns.Name, strings.Join(strings.Fields(string(out)), " "))
		}
		return nil
	})
}

// trWaitChild waits until process pid has a child whose command line has
// the argument arg and returns that command's name; "" when none appeared
// in time (the apply may have finished, or had nothing to write).
func trWaitChild(pid int, arg string, timeout time.Duration) string {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
		if len(tasks) == 0 {
			return ""
		}
		for _, task := range tasks {
			kids, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/children", pid, task.Name()))
			for _, kid := range strings.Fields(string(kids)) {
				cmdline, _ := os.ReadFile("/proc/" + kid + "/cmdline")
				args := strings.Split(string(cmdline), "\x00")
				for _, a := range args[1:] {
					if a == arg {
						return filepath.Base(args[0])
					}
				}
			}
		}
		time.Sleep(100 * time.Microsecond)
	}
	return ""
}

// trIPTool finds `ip` also when PATH lacks the sbin directories.
func trIPTool() string {
	if p, err := exec.LookPath("ip"); err == nil {
		return p
	}
	for _, p := range []string{"/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return "ip"
}

// TestFaultKill kills `svcnat apply` with SIGKILL at random points of a
// change between two configurations: the live owned rules must then be the
// old or the new set, never a mix, and the next apply converges. The
// configurations are kept small enough that the payload of the change
// fits in a pipe buffer (see TestFaultKillDuringRestore for bigger ones).
func TestFaultKill(t *testing.T) {
	t.Parallel()
	tl := newTrafficLab(t, "nft", netlab.Options{Backends: 3, HTTPPorts: []int{80}, UDPPorts: []int{}})
	k := newTrKill(t, tl, 25)
	for _, text := range k.texts {
		if len(text) > 48<<10 {
			t.Fatalf("the configurations render %d bytes; keep them under 48 KiB so the payload fits a pipe buffer", len(text))
		}
	}
	k.run(t, 10, false)
	if len(k.crossTable) > 0 {
		t.Fatalf("SIGKILL left the tables of different generations:\n%s", strings.Join(k.crossTable, "\n"))
	}
}

// TestFaultKillDuringRestore kills `svcnat apply` while the
// iptables-restore it started is still reading a payload bigger than a
// pipe buffer. iptables-restore commits each table at its COMMIT line, so
// a payload cut off after *filter's COMMIT would leave the filter table
// new and the nat table old; the runner hands it a file for that reason.
func TestFaultKillDuringRestore(t *testing.T) {
	t.Parallel()
	tl := newTrafficLab(t, "nft", netlab.Options{Backends: 3, HTTPPorts: []int{80}, UDPPorts: []int{}})
	k := newTrKill(t, tl, 100)
	k.run(t, 6, true)
	if len(k.crossTable) > 0 {
		t.Fatalf("SIGKILL of svcnat apply during iptables-restore left a mix of generations (the table-by-table summary above each line):\n%s",
			strings.Join(k.crossTable, "\n"))
	}
}

// trKill is the state of a SIGKILL test: two configurations, their owned
// rules once applied, and which one is live.
type trKill struct {
	tl         *trafficLab
	dirs       [2]string
	texts      [2]string
	applyTime  time.Duration
	cur        int
	rng        *rand.Rand
	crossTable []string // kills that left tables of both generations
}

// newTrKill applies configuration A then B (n services each, B without a
// few of A's and with a few new ones, some without endpoints so that the
// filter table changes too) and records their owned rules.
func newTrKill(t *testing.T, tl *trafficLab, n int) *trKill {
	t.Helper()
	k := &trKill{tl: tl}
	cfgs := [2][]trService{trManyServices(n, 32, 0, 3), trManyServices(n, 32, 1, 3)}
	cfgs[1] = append(cfgs[1][10:], trManyServices(n+10, 32, 1, 3)[n:]...)
	for i := range 2 {
		k.dirs[i] = tl.configure(t, cfgs[i]...)
		begin := time.Now()
		tl.SV.MustRun(t, 0, "apply", "-auto-approve")
		k.applyTime = time.Since(begin)
		k.texts[i] = tl.owned(t)
	}
	k.cur = 1
	if k.texts[0] == k.texts[1] {
		t.Fatal("the two configurations render the same rules")
	}
	// default/svc-20 is in both configurations.
	trGet(t, tl.Client.NS, trURL("10.32.32.21", 80), "default/svc-20 10.32.32.21:80")
	seed := time.Now().UnixNano()
	k.rng = rand.New(rand.NewPCG(uint64(seed), 0))
	t.Logf("%d services; owned rules A %d bytes, B %d bytes; a full apply takes %v (seed %d)",
		n, len(k.texts[0]), len(k.texts[1]), k.applyTime.Round(time.Millisecond), seed)
	return k
}

// run kills iterations applies, each switching to the other configuration:
// at a random time in the apply, or (duringRestore) 0–3 ms after the
// iptables-restore that writes the change has started. After each kill
// every table must be the old or the new generation (a mix across tables
// is recorded in crossTable, a mix inside a table fails), and the next
// apply must converge.
func (k *trKill) run(t *testing.T, iterations int, duringRestore bool) {
	t.Helper()
	tl := k.tl
	outcome := map[string]int{}
	for iter := range iterations {
		target := 1 - k.cur
		tl.SV.Config = k.dirs[target]
		cmd := tl.SV.Cmd("apply", "-auto-approve")
		var out strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		var when string
		if !duringRestore {
			delay := time.Duration(k.rng.Int64N(int64(k.applyTime * 5 / 4)))
			time.Sleep(delay)
			when = fmt.Sprintf("%v after start", delay.Round(time.Microsecond))
		} else {
			delay := time.Duration(k.rng.Int64N(int64(3 * time.Millisecond)))
			child := trWaitChild(cmd.Process.Pid, "--noflush", 5*time.Second)
			time.Sleep(delay)
			when = fmt.Sprintf("%v after %s --noflush started", delay.Round(time.Microsecond), child)
		}
		_ = cmd.Process.Signal(os.Kill)
		err := cmd.Wait()
		trWaitNSIdle(t, tl.Node)

		live := tl.owned(t)
		old, nw, got := trTables(k.texts[k.cur]), trTables(k.texts[target]), trTables(live)
		var perTable []string
		gens := map[string]bool{}
		for _, table := range trTableNames(old, nw, got) {
			switch got[table] {
			case old[table]:
				perTable = append(perTable, table+" old")
				gens["old"] = true
			case nw[table]:
				perTable = append(perTable, table+" new")
				gens["new"] = true
			default:
				t.Fatalf("netns %s: SIGKILL %d, %s (apply %c -> %c, %v): the %s table's owned rules are neither the old nor the new set:\n--- old (-) vs live (+)\n%s\n--- new (-) vs live (+)\n%s\nsvcnat output:\n%s",
					tl.Node.Name, iter, when, 'A'+k.cur, 'A'+target, err, table, trLineDiff(old[table], got[table]), trLineDiff(nw[table], got[table]), out.String())
			}
		}
		summary := fmt.Sprintf("SIGKILL %d, %s (%v): %s", iter, when, err, strings.Join(perTable, ", "))
		switch {
		case len(gens) > 1:
			outcome["mixed"]++
			k.crossTable = append(k.crossTable, fmt.Sprintf("netns %s: %s; old (-) vs live (+):\n%s", tl.Node.Name, summary, trHead(trLineDiff(k.texts[k.cur], live), 4)))
		case gens["new"]:
			outcome["new"]++
		default:
			outcome["old"]++
		}
		t.Log(summary)

		// The next apply converges.
		tl.SV.MustRun(t, 0, "apply", "-auto-approve")
		tl.SV.MustRun(t, 0, "plan", "--detailed-exitcode")
		if live := tl.owned(t); live != k.texts[target] {
			t.Fatalf("after the apply that followed SIGKILL %d the live rules differ from the configuration:\n%s", iter, trLineDiff(k.texts[target], live))
		}
		k.cur = target
	}
	t.Logf("after SIGKILL the live rules were: %s", trFmtCounts(outcome))
	trGet(t, tl.Client.NS, trURL("10.32.32.21", 80), "default/svc-20 10.32.32.21:80 after the kills")
}

// trTables splits backend.Ruleset.Text output into its tables ("*nat" ... COMMIT).
func trTables(text string) map[string]string {
	out := map[string]string{}
	table := ""
	for _, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(l, "*") {
			table = l[1:]
		}
		if table != "" {
			out[table] += l + "\n"
		}
	}
	return out
}

func trTableNames(sets ...map[string]string) []string {
	seen := map[string]bool{}
	var names []string
	for _, s := range sets {
		for n := range s {
			if !seen[n] {
				seen[n] = true
				names = append(names, n)
			}
		}
	}
	sort.Strings(names)
	return names
}

// trHead keeps the first n lines of s.
func trHead(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) <= n {
		return s
	}
	return strings.Join(lines[:n], "\n") + fmt.Sprintf("\n... (%d more lines)", len(lines)-n)
}

// trLineDiff lists the lines only in want (-) and only in got (+).
func trLineDiff(want, got string) string {
	in := func(s string) map[string]int {
		m := map[string]int{}
		for _, l := range strings.Split(s, "\n") {
			m[l]++
		}
		return m
	}
	w, g := in(want), in(got)
	var b strings.Builder
	for _, l := range strings.Split(want, "\n") {
		if g[l] == 0 {
			fmt.Fprintf(&b, "- %s\n", l)
		}
	}
	for _, l := range strings.Split(got, "\n") {
		if w[l] == 0 {
			fmt.Fprintf(&b, "+ %s\n", l)
		}
	}
	return b.String()
}

// TestFaultConcurrentApply starts two applies of different configurations
// on the same state directory at once: each either succeeds (one of them
// after waiting for the lock) or gives up cleanly with a lock message, and
// the live rules end up equal to one of the two configurations.
func TestFaultConcurrentApply(t *testing.T) {
	t.Parallel()
	tl := newTrafficLab(t, "nft", netlab.Options{Backends: 3, HTTPPorts: []int{80}, UDPPorts: []int{}})
	cfgs := [2][]trService{trManyServices(100, 32, 0, 3), trManyServices(100, 32, 2, 3)}
	var runners [2]*Svcnat
	var texts [2]string
	for i := range 2 {
		tl.configure(t, cfgs[i]...)
		tl.SV.MustRun(t, 0, "apply", "-auto-approve")
		texts[i] = tl.owned(t)
		r := *tl.SV // same namespace and state directory
		runners[i] = &r
	}
	contended := 0
	for round, lockTimeout := range []string{"0s", "0s", "0s", "30s", "30s", "30s"} {
		type result struct {
			out  string
			code int
		}
		var res [2]result
		var wg sync.WaitGroup
		startGate := make(chan struct{})
		for i := range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				cmd := runners[i].Cmd("apply", "-auto-approve", "--lock-timeout", lockTimeout)
				var out strings.Builder
				cmd.Stdout, cmd.Stderr = &out, &out
				<-startGate
				if err := cmd.Run(); err != nil && cmd.ProcessState == nil {
					res[i] = result{err.Error(), -1}
					return
				}
				res[i] = result{out.String(), cmd.ProcessState.ExitCode()}
			}()
		}
		close(startGate)
		wg.Wait()

		var ok []int
		for i, r := range res {
			switch {
			case r.code == 0:
				ok = append(ok, i)
			case r.code == 1 && lockTimeout == "0s" && strings.Contains(r.out, "locked"):
				contended++
				t.Logf("round %d: apply %c gave up: %s", round, 'A'+i, trFirstLine(r.out, "locked"))
			default:
				t.Fatalf("round %d (--lock-timeout %s): apply %c: exit %d, want 0 or (with no lock timeout) exit 1 with a lock message:\n%s", round, lockTimeout, 'A'+i, r.code, r.out)
			}
		}
		if len(ok) == 0 {
			t.Fatalf("round %d: neither apply succeeded:\nA: %s\nB: %s", round, res[0].out, res[1].out)
		}
		live := tl.owned(t)
		final := -1
		for i := range 2 {
			if live == texts[i] {
				final = i
			}
		}
		if final < 0 {
			t.Fatalf("round %d: the live rules are neither configuration A's nor B's:\n--- A vs live\n%s", round, trLineDiff(texts[0], live))
		}
		if len(ok) == 1 && ok[0] != final {
			t.Fatalf("round %d: only apply %c succeeded but the live rules are %c's", round, 'A'+ok[0], 'A'+final)
		}
		runners[final].MustRun(t, 0, "plan", "--detailed-exitcode")
		t.Logf("round %d (--lock-timeout %s): succeeded %v, live rules are %c's", round, lockTimeout, ok, 'A'+final)
	}
	t.Logf("%d applies gave up on the lock", contended)
}

func trFirstLine(s, sub string) string {
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			return strings.TrimSpace(l)
		}
	}
	return strings.TrimSpace(s)
}

// TestFaultForeignRules installs Docker-like rules in the node namespace —
// a DOCKER nat chain with a DNAT published port, a FORWARD policy of DROP
// with Docker's accept rules — and checks after every svcnat step (apply,
// change, rollback, destroy) that the published port still answers and that
// the foreign rules are byte for byte what they were.
func TestFaultForeignRules(t *testing.T) {
	t.Parallel()
	tl := newTrafficLab(t, "nft", netlab.Options{Backends: 3, HTTPPorts: []int{80, 8080}, UDPPorts: []int{}})
	ipt := "iptables-nft"
	for _, args := range [][]string{
		{"-t", "nat", "-N", "DOCKER"},
		{"-t", "nat", "-A", "PREROUTING", "-m", "addrtype", "--dst-type", "LOCAL", "-j", "DOCKER"},
		{"-t", "nat", "-A", "OUTPUT", "!", "-d", "127.0.0.0/8", "-m", "addrtype", "--dst-type", "LOCAL", "-j", "DOCKER"},
		{"-t", "nat", "-A", "POSTROUTING", "-s", "10.64.1.0/24", "!", "-o", "be0", "-j", "MASQUERADE"},
		{"-t", "nat", "-A", "DOCKER", "-d", "192.0.2.1/32", "!", "-i", "be0", "-p", "tcp", "-m", "tcp", "--dport", "8081", "-j", "DNAT", "--to-destination", "10.64.1.2:8080"},
		{"-t", "filter", "-N", "DOCKER"},
		{"-t", "filter", "-N", "DOCKER-USER"},
		{"-t", "filter", "-P", "FORWARD", "DROP"},
		{"-t", "filter", "-A", "FORWARD", "-j", "DOCKER-USER"},
		{"-t", "filter", "-A", "FORWARD", "-o", "be0", "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", "-j", "ACCEPT"},
		{"-t", "filter", "-A", "FORWARD", "-o", "be0", "-j", "DOCKER"},
		{"-t", "filter", "-A", "FORWARD", "-i", "be0", "!", "-o", "be0", "-j", "ACCEPT"},
		{"-t", "filter", "-A", "DOCKER", "-d", "10.64.1.2/32", "!", "-i", "be0", "-o", "be0", "-p", "tcp", "-m", "tcp", "--dport", "8080", "-j", "ACCEPT"},
		{"-t", "filter", "-A", "DOCKER-USER", "-j", "RETURN"},
		{"-t", "filter", "-A", "INPUT", "-p", "tcp", "--dport", "22", "-j", "ACCEPT"},
	} {
		tl.Node.Run(t, append([]string{ipt, "-w"}, args...)...)
	}
	foreign := tl.foreign(t)
	published := trURL("192.0.2.1", 8081)
	check := func(step string, service bool) {
		t.Helper()
		what := "foreign DOCKER DNAT 192.0.2.1:8081 -> 10.64.1.2:8080 (FORWARD policy DROP, Docker's accepts), " + step
		r := trGet(t, tl.Client.NS, published, what)
		trExpectFrom(t, r, what, "backend-0")
		trExpectSource(t, r, what, "192.0.2.2", "Docker's DNAT does not masquerade")
		if got := tl.foreign(t); got != foreign {
			t.Fatalf("%s: netns %s: rules svcnat does not own changed:\n%s", step, tl.Node.Name, trLineDiff(foreign, got))
		}
		if service {
			// svcnat's own service must work beside Docker under FORWARD
			// policy DROP (SVCNAT-FORWARD accepts the marked traffic).
			what := "default/web 10.32.0.61:80 beside Docker's rules, " + step
			trExpectFrom(t, trGet(t, tl.Client.NS, trURL("10.32.0.61", 80), what), what, "backend-0", "backend-1", "backend-2")
		}
	}
	check("before svcnat", false)

	two := trWeb("default/web", "10.32.0.61", trEndpoints("node1", trBackendIP4(0), trBackendIP4(1))...)
	tl.apply(t, nil, two)
	check("after apply", true)

	three := trWeb("default/web", "10.32.0.61", trEndpoints("node1", trBackendIP4(0), trBackendIP4(1), trBackendIP4(2))...)
	other := trWeb("default/other", "10.32.0.62", trEndpoints("node1", trBackendIP4(2))...)
	tl.apply(t, nil, three, other)
	check("after a change", true)

	tl.SV.MustRun(t, 0, "rollback", "-auto-approve")
	check("after rollback", true)
	if live, _ := tl.Client.WithTimeout(trNegative).HTTPGet(trURL("10.32.0.62", 80)); live != "" {
		t.Fatalf("after rollback default/other (10.32.0.62) still answers: %q", live)
	}

	tl.SV.MustRun(t, 0, "destroy", "-auto-approve")
	check("after destroy", false)
	if owned := tl.owned(t); strings.Contains(owned, trPrefix) {
		t.Fatalf("after destroy svcnat still owns rules:\n%s", owned)
	}
}
