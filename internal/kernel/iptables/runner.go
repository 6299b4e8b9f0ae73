package iptables

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"

	goipt "github.com/coreos/go-iptables/iptables"

	"github.com/svcnat/svcnat/internal/kernel/backend"
	"github.com/svcnat/svcnat/internal/kernel/iptables/rules"
	"github.com/svcnat/svcnat/internal/kernel/netns"
)

// binaries are the programs of one family and backend.
type binaries struct {
	save, restore string // paths found on PATH
	// cmd is the iptables command itself (iptables-nft, ...), for
	// single-chain reads; "" when it is missing, and then full saves
	// serve instead.
	cmd string
	err error // why the family cannot be used, if it cannot
}

// runner implements Interface by exec'ing one backend's binaries. It is
// safe for concurrent use; iptables' own xtables lock (-w) serialises
// writers.
type runner struct {
	backend Backend
	netns   string
	wait    int // -w seconds
	version Version
	bins    map[backend.Family]binaries

	mu   sync.Mutex
	cmds map[backend.Family]*goipt.IPTables // see command
}

// New returns the real runner for opts.Backend, which must be NFT or
// Legacy: it chooses nothing. Open is where svcnat chooses a backend. The
// binaries are looked up on PATH now: IPv4 ones must exist; missing IPv6
// ones make only IPv6 calls fail.
func New(opts Options) (Interface, error) {
	b := opts.Backend
	if b != NFT && b != Legacy {
		return nil, fmt.Errorf("iptables.New needs the nft or the legacy backend, not %q (Open chooses one)", b)
	}
	if opts.NetNS != "" {
		h, err := netns.Open(opts.NetNS)
		if err != nil {
			return nil, err
		}
		h.Close()
	}
	r := &runner{backend: b, netns: opts.NetNS, wait: waitSeconds(opts.Wait), bins: map[backend.Family]binaries{},
		cmds: map[backend.Family]*goipt.IPTables{}}
	for _, fam := range backend.Families {
		bins, v, err := findBinaries(b, fam)
		if err != nil {
			if fam == backend.IPv4 {
				return nil, err
			}
			bins.err = err
		}
		if fam == backend.IPv4 {
			r.version = v
		}
		r.bins[fam] = bins
	}
	return r, nil
}

// Name implements backend.Kernel.
func (r *runner) Name() backend.Name { return r.backend }

// ReadOnly implements backend.Kernel: the runner changes rules.
func (r *runner) ReadOnly() bool { return false }

// Version implements backend.Kernel: the restore program's version.
func (r *runner) Version() string { return r.version.String() }

// Limits implements backend.Kernel.
func (r *runner) Limits() backend.Limits { return limits(r.backend, r.version) }

// findBinaries looks up the save and restore programs of backend b and
// family fam on PATH: the explicit variants (iptables-nft-save,
// ip6tables-legacy-restore, ...) when both exist, else the plain
// iptables-save and iptables-restore, but only when their -V reports
// backend b (a plain name is whatever the distribution's alternatives
// point to). It returns the restore program's version.
func findBinaries(b Backend, fam backend.Family) (binaries, Version, error) {
	base := "iptables"
	if fam == backend.IPv6 {
		base = "ip6tables"
	}
	variant := binaries{save: base + "-" + b.Digested() + "-save", restore: base + "-" + b.Digested() + "-restore", cmd: base + "-" + b.Digested()}
	if bins, ok := lookBoth(variant); ok {
		v, err := probeVersion(bins.restore)
		if err != nil {
			return bins, v, err
		}
		if v.Mode != versionMode(b) {
			return bins, v, fmt.Errorf("%s reports %s, not the %s backend", bins.restore, v.Mode, b)
		}
		return bins, v, nil
	}
	plain, ok := lookBoth(binaries{save: base + "-save", restore: base + "-restore", cmd: base})
	if !ok {
		return plain, Version{}, fmt.Errorf("neither %s/%s nor %s-save/%s-restore found on PATH",
			variant.save, variant.restore, base, base)
	}
	var v Version
	for _, p := range []string{plain.save, plain.restore, plain.cmd} {
		if p == "" {
			continue
		}
		pv, err := probeVersion(p)
		if err != nil {
			return plain, pv, err
		}
		if pv.Mode != versionMode(b) {
			return plain, pv, fmt.Errorf("%s not found on PATH, and %s is %s, not the %s backend",
				variant.restore, p, pv.Mode, b)
		}
		v = pv
	}
	return plain, v, nil
}

// lookBoth finds the save and restore programs, which must both exist,
// and the command, which may not.
func lookBoth(b binaries) (binaries, bool) {
	s, err1 := exec.LookPath(b.save)
	r, err2 := exec.LookPath(b.restore)
	if err1 != nil || err2 != nil {
		return b, false
	}
	c, _ := exec.LookPath(b.cmd)
	return binaries{save: s, restore: r, cmd: c}, true
}

// probeVersion runs `path -V`; it needs no namespace.
func probeVersion(path string) (Version, error) {
	cmd := exec.Command(path, "-V")
	cmd.Env = cEnv()
	out, err := cmd.CombinedOutput()
	if err != nil {
		return Version{}, fmt.Errorf("probing %s -V: %w: %s", path, err, strings.TrimSpace(string(out)))
	}
	v, err := ParseVersion(string(out))
	if err != nil {
		return v, fmt.Errorf("probing %s -V: %w", path, err)
	}
	return v, nil
}

// cEnv pins the locale: stderr is read by restoreFailure.
func cEnv() []string { return append(os.Environ(), "LC_ALL=C") }

// run starts cmd inside namespace ns and waits for it outside, so no
// locked thread is held while iptables runs.
func run(ns string, cmd *exec.Cmd) error {
	if err := netns.Do(ns, cmd.Start); err != nil {
		return err
	}
	return cmd.Wait()
}

func (r *runner) family(fam backend.Family) (binaries, error) {
	b, ok := r.bins[fam]
	if !ok {
		return b, fmt.Errorf("unknown IP family %d", fam)
	}
	return b, b.err
}

// Save implements Interface.
func (r *runner) Save(fam backend.Family) (*backend.Ruleset, error) { return r.Read(fam, nil) }

// Read implements backend.Kernel: it runs iptables-save (all tables;
// legacy lists only tables that already exist, so nothing is created).
// What the dump has in common with like is shared with it (see
// rules.ParseSaveLike), so reading back 10,000 services costs little
// memory beside the desired rules.
func (r *runner) Read(fam backend.Family, like *backend.Ruleset) (*backend.Ruleset, error) {
	bins, err := r.family(fam)
	if err != nil {
		return nil, fmt.Errorf("reading %s rules: %w", fam, err)
	}
	rs, err := save(r.netns, bins.save, fam, like)
	if err != nil {
		return nil, fmt.Errorf("reading %s rules: %w", fam, err)
	}
	return rs, nil
}

// save runs one iptables-save program in namespace ns and parses its dump
// as it comes (see rules.ParseSaveLikeFrom).
func save(ns, path string, fam backend.Family, like *backend.Ruleset) (*backend.Ruleset, error) {
	var stderr bytes.Buffer
	cmd := exec.Command(path)
	cmd.Stderr, cmd.Env = &stderr, cEnv()
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := netns.Do(ns, cmd.Start); err != nil {
		return nil, fmt.Errorf("running %s: %w", filepath.Base(path), err)
	}
	rs, perr := rules.ParseSaveLikeFrom(fam, out, like)
	if perr != nil {
		cmd.Process.Kill()
	}
	if err := cmd.Wait(); err != nil && perr == nil {
		return nil, fmt.Errorf("running %s: %w: %s", filepath.Base(path), err, strings.TrimSpace(withoutLegacyWarning(stderr.String())))
	}
	if perr != nil {
		return nil, fmt.Errorf("parsing %s output: %w", filepath.Base(path), perr)
	}
	return rs, nil
}

// ReadChain implements backend.Kernel: it runs `iptables -t TABLE -S CHAIN` (through go-iptables, which
// adds the xtables lock's --wait): one chain costs a fraction of a full
// save on a host with thousands of chains. Without the iptables command on
// PATH it falls back to a full save.
func (r *runner) ReadChain(fam backend.Family, table, chain string) ([]backend.Rule, bool, error) {
	bins, err := r.family(fam)
	if err != nil {
		return nil, false, fmt.Errorf("reading %s %s %s: %w", fam, table, chain, err)
	}
	if r.backend == Legacy && !legacyTableExists(r.netns, fam, table) {
		return nil, false, nil // naming a legacy table creates it
	}
	if bins.cmd == "" {
		return listFromSave(r, fam, table, chain)
	}
	ipt, err := r.command(fam, bins.cmd)
	if err != nil {
		return nil, false, fmt.Errorf("reading %s %s %s: %w", fam, table, chain, err)
	}
	rs, ok, err := listChain(r.netns, ipt, table, chain)
	if err != nil {
		return nil, false, fmt.Errorf("reading %s %s %s: %w", fam, table, chain, err)
	}
	return rs, ok, nil
}

// command is go-iptables over the family's command, made once.
func (r *runner) command(fam backend.Family, cmd string) (*goipt.IPTables, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if ipt := r.cmds[fam]; ipt != nil {
		return ipt, nil
	}
	ipt, err := command(cmd, fam, r.wait)
	if err != nil {
		return nil, err
	}
	r.cmds[fam] = ipt
	return ipt, nil
}

// listFromSave reads one chain out of a full save.
func listFromSave(k Interface, fam backend.Family, table, chain string) ([]backend.Rule, bool, error) {
	rs, err := k.Save(fam)
	if err != nil {
		return nil, false, err
	}
	t := rs.Table(table)
	if t == nil || t.Chain(chain) == nil {
		return nil, false, nil
	}
	return t.Chain(chain).Rules, true, nil
}

// Write implements backend.Kernel (see write).
// Transactions is transactions: iptables orders and stages them alike
// on every kernel.
func (r *runner) Transactions(fam backend.Family, changes []backend.ChainChange, batch int) ([]*backend.Transaction, *backend.Transaction) {
	return transactions(fam, changes, batch)
}

func (r *runner) Write(tx *backend.Transaction) { write(tx) }

// Run implements backend.Kernel: it restores the written transaction.
func (r *runner) Run(tx *backend.Transaction) error { return runTx(r, tx) }

// Restore runs iptables-restore --noflush -w SECS with payload on stdin.
func (r *runner) Restore(fam backend.Family, payload []byte, flags RestoreFlags) error {
	if flags&NoFlushTables == 0 {
		return fmt.Errorf("restoring %s rules: %w", fam, ErrFlushRefused)
	}
	bins, err := r.family(fam)
	if err != nil {
		return fmt.Errorf("restoring %s rules: %w", fam, err)
	}
	args := []string{"--noflush"}
	if flags&RestoreCounters != 0 {
		args = append(args, "--counters")
	}
	// The payload goes in as a file, not a pipe: iptables-restore commits
	// each table at its COMMIT line, so a pipe cut short by svcnat dying
	// (SIGKILL) would leave the tables before the cut applied and the rest
	// not. From a file it always reads the whole payload.
	in, err := payloadFile(payload)
	if err != nil {
		return fmt.Errorf("restoring %s rules: %w", fam, err)
	}
	defer in.Close()
	if err := r.restoreFrom(fam, bins.restore, args, in, payload); err != nil {
		return fmt.Errorf("restoring %s rules: %w", fam, err)
	}
	return nil
}

// restoreFrom runs the restore program at path with args (and -w) in the
// runner's namespace, reading payload from in.
func (r *runner) restoreFrom(fam backend.Family, path string, args []string, in *os.File, payload []byte) error {
	if r.version.restoreHasWait() {
		args = append(args, "-w", strconv.Itoa(r.wait))
	}
	var stderr bytes.Buffer
	cmd := exec.Command(path, args...)
	cmd.Stdin, cmd.Stderr, cmd.Env = in, &stderr, cEnv()
	// A process group of its own keeps a terminal's Ctrl-C away from
	// iptables-restore: svcnat lets a transaction it started finish and
	// then rolls back, rather than have it cut in half.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	err := run(r.netns, cmd)
	if err == nil {
		return nil
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return fmt.Errorf("running %s: %w", filepath.Base(path), err)
	}
	return restoreFailure(fam, payload, stderr.String(), ee.ExitCode(), err)
}

// payloadFile returns an unlinked temporary file holding payload, rewound,
// for a child's standard input.
func payloadFile(payload []byte) (*os.File, error) {
	f, err := os.CreateTemp("", "svcnat-restore-")
	if err != nil {
		return nil, fmt.Errorf("staging the payload: %w", err)
	}
	os.Remove(f.Name())
	if _, err := f.Write(payload); err != nil {
		f.Close()
		return nil, fmt.Errorf("staging the payload: %w", err)
	}
	if _, err := f.Seek(0, 0); err != nil {
		f.Close()
		return nil, fmt.Errorf("staging the payload: %w", err)
	}
	return f, nil
}
