// Package nftables is svcnat's nftables backend: a backend.Kernel that
// reads and writes svcnat's own table of each family (ip svcnat, ip6
// svcnat) with the nft program, and a Fake that interprets the same
// scripts in memory for tests. The elements of its sets and maps are
// read over netlink instead, decoded into the text nft lists (nlread.go,
// elements.go): nft 1.0.6 prints them slowly. It owns one table per family and never
// reads, names or changes any other: nft has no jumps between tables, so
// the rest of the host's ruleset is nothing svcnat needs to see.
//
// Rules and elements are kept as nft 1.0.6 lists them (see listing.go);
// what to write is decided elsewhere (package render makes the table,
// the planner the changes), and this package only turns changes into nft
// -f scripts (write.go), runs them and reads the table back.
package nftables

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"

	gnft "github.com/google/nftables"

	"golang.org/x/sys/unix"

	"github.com/svcnat/svcnat/internal/kernel/backend"
	"github.com/svcnat/svcnat/internal/kernel/netns"
)

// Name is the nftables backend's name.
const Name backend.Name = "nftables"

// Options configure a Runner.
type Options struct {
	// NetNS is the network namespace nft runs in; "" for svcnat's own.
	NetNS string
	// Prefix names the table (backend.NFTTable): "SVCNAT" owns ip svcnat
	// and ip6 svcnat. Empty means "svcnat".
	Prefix string
}

// The oldest nft and kernel this backend runs on: knftables' own floor
// (nft 1.0.1, with JSON for listing), and the kernel kube-proxy's
// nftables mode requires (5.13: the nft features its ruleset uses).
var (
	minNFT    = [3]int{1, 0, 1}
	minKernel = [2]int{5, 13}
)

// Runner is the real nftables backend: it runs nft in a namespace. It is
// safe for concurrent use; nft serialises writers in the kernel, each
// script being one netlink transaction.
type Runner struct {
	nft     string // path
	netns   string
	table   string
	version string

	declsMu sync.Mutex
	decls   map[declKey]decl // by ReadChain (remember)
}

var _ backend.Kernel = (*Runner)(nil)

// New finds nft on PATH and checks it and the kernel: it refuses an nft
// older than 1.0.1 or built without JSON, and a kernel older than 5.13.
func New(opts Options) (*Runner, error) {
	if opts.NetNS != "" {
		h, err := netns.Open(opts.NetNS)
		if err != nil {
			return nil, err
		}
		h.Close()
	}
	path, err := exec.LookPath("nft")
	if err != nil {
		return nil, fmt.Errorf("the nftables backend needs nft (Debian's nftables package): %w", err)
	}
	prefix := opts.Prefix
	if prefix == "" {
		prefix = "svcnat"
	}
	r := &Runner{nft: path, netns: opts.NetNS, table: backend.NFTTable(prefix)}
	// -j before --version: nft parses its options in order and refuses
	// -j at once when built without JSON, so one cheap run checks both.
	// (`nft -j list tables`, the check before, cached the whole ruleset
	// first: 1.5 s at 10,000 services.)
	out, err := r.output(nil, "-j", "--version")
	if err != nil {
		var ne *nftError
		if errors.As(err, &ne) && strings.Contains(ne.stderr, "JSON") {
			return nil, fmt.Errorf("nft has no JSON support (%s), which the nftables backend needs", strings.TrimSpace(firstLine(ne.stderr)))
		}
		return nil, fmt.Errorf("probing nft -j --version: %w", err)
	}
	v, err := parseVersion(string(out))
	if err != nil {
		return nil, err
	}
	if less(v[:], minNFT[:]) {
		return nil, fmt.Errorf("nft %d.%d.%d is older than 1.0.1, the oldest the nftables backend supports", v[0], v[1], v[2])
	}
	r.version = fmt.Sprintf("%d.%d.%d", v[0], v[1], v[2])
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return nil, fmt.Errorf("reading the kernel's version: %w", err)
	}
	release := unix.ByteSliceToString(u.Release[:])
	if k, ok := kernelVersion(release); !ok || less(k[:], minKernel[:]) {
		return nil, fmt.Errorf("kernel %s is older than 5.13, the oldest the nftables backend supports", release)
	}
	return r, nil
}

var versionPattern = regexp.MustCompile(`\bv(\d+)\.(\d+)(?:\.(\d+))?`)

// parseVersion reads `nft --version`: "nftables v1.0.6 (Lester Gooch #5)".
func parseVersion(out string) ([3]int, error) {
	var v [3]int
	m := versionPattern.FindStringSubmatch(out)
	if m == nil {
		return v, fmt.Errorf("cannot read nft's version from %q", strings.TrimSpace(out))
	}
	for i := range 3 {
		v[i], _ = strconv.Atoi(m[i+1]) // "" (no patch) is 0
	}
	return v, nil
}

// kernelVersion reads a uname release ("6.1.0-18-amd64").
func kernelVersion(release string) ([2]int, bool) {
	var k [2]int
	f := strings.FieldsFunc(release, func(r rune) bool { return r < '0' || r > '9' })
	if len(f) < 2 {
		return k, false
	}
	k[0], _ = strconv.Atoi(f[0])
	k[1], _ = strconv.Atoi(f[1])
	return k, true
}

func less(a, b []int) bool {
	for i := range a {
		if a[i] != b[i] {
			return a[i] < b[i]
		}
	}
	return false
}

// Name implements backend.Kernel.
func (r *Runner) Name() backend.Name { return Name }

// ReadOnly implements backend.Kernel: the runner changes rules.
func (r *Runner) ReadOnly() bool { return false }

// Version implements backend.Kernel: nft's version ("1.0.6").
func (r *Runner) Version() string { return r.version }

// Table is the table the runner owns in each family.
func (r *Runner) Table() string { return r.table }

// Limits implements backend.Kernel (see limits).
func (r *Runner) Limits() backend.Limits { return limits }

// limits are the nftables backend's, measured once each with nft 1.0.6
// on kernel 6.x (2 CPUs, shared with other benchmarks: load average 5 to
// 9, so the numbers are high and vary by up to 2×) with internal/bench's
// 10,000 services × 5 endpoints, one in seven with ClientIP affinity, as
// package render makes them (BenchmarkColdLoad, BenchmarkReads): 12,400
// objects, five of them sets and maps (render's package doc), before
// chainless ports; 5,560 (eight sets and maps) since, most services
// being plain cluster IPs:
//
//   - Batch: the cold load as one transaction took 8.6 s; staged in
//     batches of 1,000 / 2,000 / 5,000 objects, 34 / 31 / 22 s: every
//     nft run builds its cache of the whole table first, elements
//     included, and the endpoints maps hold 50,000. So no staging.
//     With chainless ports (2026-12-07, load average 2–4): 3.6 s as one
//     transaction (the table before them, the same day: 8.7 s), staged
//     4.8 / 4.1 / 3.5 s; still no staging.
//     (kube-proxy's shape, a set or map per service and per endpoint
//     under affinity, took 114 s as one transaction and 51 s staged by
//     2,000: nf_tables' load time grows with the number of sets.)
//   - ListLimit: ReadChain of a chain costs 1 s against 11–12 s for a
//     Read of the whole table (nft's listing, 7–16 s here, of which 0.5 s
//     is parseListing), of the 50,000-element endpoints-tcp map 1.8 s, of
//     service-ips 0.5 s. Up to eight objects read one by one stay below
//     one Read (measured again on 2026-12-07, idle: any listing, even of
//     one element, 0.9–1.1 s, nft caching the table first; the whole
//     table 5–14 s): a verdict on a local endpoint touches three (its
//     service chain, the endpoints map, hairpin-connections).
//   - RandomFully: nft's masquerade fully-random is always there.
//
// Once loaded, a one-endpoint change (the service chain's rule and one
// endpoints element) and back runs in 0.2–0.4 s, two transactions; of a
// chainless port (its service-ips element, one vip-endpoints element,
// a dispatch chain made or dropped) 0.12 s.
// Read lists text, not JSON (`nft -j list table` 9.7–10.4 s, with
// --terse, which leaves out the elements svcnat compares, 3.8–8.3 s):
// rules exist only as text. Since 2026-12-07 it lists tersely (`nft -t
// list table`, 2.4 s) and reads the elements over netlink: 2.6–3.0 s
// against the whole listing's 3.6–3.9 s (load average 2.5–3); ReadChain
// of a set or map read before, by netlink alone: service-ips 70–160 ms
// (listed: 0.4–0.57 s), vip-endpoints-tcp (34,000 elements) 0.24–0.41 s
// (1.1–1.7 s), most of it the kernel's dump.
//
// ReadAhead: Read lists text, which nothing is shared with (like unused),
// so a plan lists the table while it renders.
var limits = backend.Limits{Batch: backend.NoStaging, ListLimit: 8, RandomFully: true, Syntax: backend.NFTables, ReadAhead: true}

// cEnv pins the locale: stderr is read by txFailure.
func cEnv() []string { return append(os.Environ(), "LC_ALL=C") }

// output runs nft with args in the runner's namespace, stdin from in
// (nil for none), and returns its stdout; a failure carries its stderr.
//
// nft's stdout is a memory file, read once nft is done, not a pipe: nft
// 1.0.6 writes its listing a few bytes per write(2) (a million writes for
// the 7 MB listing of 10,000 services), and a pipe's reader wakes for
// each, which cost svcnat 2 s of CPU per listing, on a core nft needed.
func (r *Runner) output(in *os.File, args ...string) ([]byte, error) {
	var stderr bytes.Buffer
	fd, err := unix.MemfdCreate("nft-stdout", unix.MFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("running nft: %w", err)
	}
	stdout := os.NewFile(uintptr(fd), "nft-stdout")
	defer stdout.Close()
	cmd := exec.Command(r.nft, args...)
	cmd.Stdout, cmd.Stderr, cmd.Env = stdout, &stderr, cEnv()
	if in != nil {
		cmd.Stdin = in
	}
	if err := netns.Do(r.netns, cmd.Start); err != nil {
		return nil, fmt.Errorf("running nft: %w", err)
	}
	waitErr := cmd.Wait()
	if _, err := stdout.Seek(0, io.SeekStart); err != nil {
		return nil, fmt.Errorf("running nft: %w", err)
	}
	out, err := io.ReadAll(stdout)
	if err != nil {
		return nil, fmt.Errorf("running nft: reading its output: %w", err)
	}
	if waitErr != nil {
		return out, &nftError{args: args, stderr: stderr.String(), err: waitErr}
	}
	return out, nil
}

// nftError is nft's failure with its stderr, for callers that tell a
// missing object from other failures (missing).
type nftError struct {
	args   []string
	stderr string
	err    error
}

func (e *nftError) Error() string {
	return fmt.Sprintf("nft %s: %v: %s", strings.Join(e.args, " "), e.err, strings.TrimSpace(firstLine(e.stderr)))
}

func (e *nftError) Unwrap() error { return e.err }

// missing reports nft refusing to list an object that does not exist:
// the kernel's ENOENT, which nft prints as "No such file or directory".
func missing(err error) bool {
	var ne *nftError
	return errors.As(err, &ne) && strings.Contains(ne.stderr, "No such file or directory")
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// Holds lists svcnat's tables of prefix that exist in namespace ns ("ip
// svcnat", "ip6 svcnat"): where the nftables backend holds svcnat's
// rules, for the choice of backend, which every command makes. It asks
// the kernel for its tables over netlink (google/nftables), not with
// `nft list tables`: nft 1.0.6 caches the whole ruleset first, which on
// a host with 10,000 services in iptables-nft took 37 s and 547 MiB for
// a list of three tables. A kernel without nf_tables holds none.
func Holds(ns, prefix string) ([]string, error) {
	var tables []*gnft.Table
	err := netns.Do(ns, func() error {
		c, err := gnft.New(gnft.AsLasting())
		if err != nil {
			return err
		}
		defer c.CloseLasting()
		tables, err = c.ListTables()
		return err
	})
	switch {
	case errors.Is(err, unix.EPROTONOSUPPORT), errors.Is(err, unix.ENOENT), errors.Is(err, unix.EINVAL),
		errors.Is(err, unix.EOPNOTSUPP), errors.Is(err, unix.EAFNOSUPPORT):
		return nil, nil // no nf_tables in this kernel (nfnetlink without it answers EINVAL)
	case err != nil:
		return nil, fmt.Errorf("listing the nftables tables: %w", err)
	}
	var held []string
	for _, fam := range []backend.Family{backend.IPv4, backend.IPv6} {
		want := tableFamily(fam)
		for _, t := range tables {
			if t.Family == want && t.Name == backend.NFTTable(prefix) {
				held = append(held, backend.NFTFamily(fam)+" "+t.Name)
			}
		}
	}
	return held, nil
}
