// Package engine runs svcnat's workflows against one host, without a
// terminal: plan (render the configuration for this host and diff it
// against the live rules), and the commands that change rules — apply from
// the configuration, apply of a saved plan, rollback and destroy. One run
// of those owns the whole apply workflow: the state lock (bounded), the
// staged and final transactions, verification, rollback on a failure or a
// signal, the conntrack cleanup and the generation record.
//
// It takes plain values — a Host (the kernel's rules, a conntrack cleaner,
// the host's addresses), a state directory, Hooks to follow a run and
// approve it — and returns results and typed errors. It never prints and
// never reads flags: the command line, a daemon or a revert process
// decide what to say.
package engine

import (
	"context"
	"net/netip"
	"time"

	"github.com/svcnat/svcnat/internal/applier"
	"github.com/svcnat/svcnat/internal/kernel"
	"github.com/svcnat/svcnat/internal/kernel/backend"
	"github.com/svcnat/svcnat/internal/kernel/conntrack"
	"github.com/svcnat/svcnat/internal/planner"
	"github.com/svcnat/svcnat/internal/probe"
	"github.com/svcnat/svcnat/internal/state"
)

// Engine runs workflows against one host. Its fields are set before the
// first call and not changed after.
type Engine struct {
	Host
	// StateDir holds generations and the lock.
	StateDir string
	// LockTimeout bounds the wait for another svcnat holding the lock;
	// 0 tries once.
	LockTimeout time.Duration
	// Batch bounds the chains one staging transaction creates
	// (0: the backend's Limits).
	Batch int
	Hooks Hooks
	// Confirmation, when set, makes an apply pending until confirmed (see
	// ConfirmOptions).
	Confirmation *ConfirmOptions
	// Probes are checked after an apply's commit, from the host's
	// namespace, retried until ProbeTimeout: if one fails the apply is
	// rolled back; if all pass, a pending apply is confirmed.
	Probes       []probe.Probe
	ProbeTimeout time.Duration
	// Adopt takes over the live chains of the prefix that this state
	// directory did not record, or that another state directory wrote
	// last in this network namespace (see ownershipRefusal), instead of
	// refusing them: chains an earlier svcnat wrote without this state.
	Adopt bool
	// Origin is who runs the engine ("" for the command line,
	// OriginReconcile for the daemon): the generations it records say so,
	// and the daemon's plans read no health view (see healthOverlay).
	Origin Origin

	// held is the network namespace's lock the running command holds
	// (nil outside one): an Engine runs one command at a time.
	held *nsLock
}

// Host is what the engine works on.
type Host struct {
	// Kernel reads and writes the rules: the backend kernel.Open chose, a
	// read-only saved dump, or a backend's fake in tests.
	Kernel backend.Kernel
	// Conntrack deletes the conntrack entries of removed UDP endpoints;
	// nil cleans nothing (a dump has no conntrack table).
	Conntrack Cleaner
	// Addresses lists the host's addresses, which decide
	// node_port_addresses' rules and whether a load-balancer source range
	// admits the node; nil when they are not known (a dump of another host).
	Addresses func() ([]netip.Addr, error)
	// Detection is what the backend survey found when the kernel was
	// opened (zero for a dump or a fake).
	Detection kernel.Detection
	// NetNS is the network namespace the rules are in ("" for svcnat's
	// own), where probes run.
	NetNS string
	// RunsIn is the ip netns name of the network namespace svcnat runs
	// in, when NetNS is "" and one names it (svcnat started by ip netns
	// exec): the state directory records that name (see namespaceName).
	// OpenHost finds it; "" when no name is that namespace's.
	RunsIn string
	// RuntimeDir holds the network namespace's lock and owner record
	// (DefaultRuntimeDir on a real kernel); "" takes no namespace lock (a
	// dump, a fake kernel).
	RuntimeDir string
	// Backend is the backend asked for (--backend) on a host with no
	// kernel open (render, a planned trace), whose objects it renders;
	// "" or kernel.Auto renders iptables rules.
	Backend backend.Name
}

// Cleaner deletes conntrack entries and says how many flows had some.
// conntrack.Netlink is the real one.
type Cleaner interface {
	Delete(flows []conntrack.Flow) (int, error)
}

// Hooks are how a caller follows a run and takes part in it. Every field
// is optional.
type Hooks struct {
	// Planned is called with the plan a command is about to commit, made
	// under the lock, before anything changes; also when it is empty or
	// blocked, so that the caller can show it.
	Planned func(Planned)
	// Approve is asked before a plan that changes something is committed
	// (never for a saved plan, which was reviewed when it was made); false
	// cancels with ErrCancelled. Nil approves: a daemon has no one to ask.
	Approve func(ctx context.Context, p *planner.Plan) (bool, error)
	// Step is called before each transaction of a commit and before its
	// verification.
	Step func(Step)
}

// Step is one step of a commit: a staging batch, a family's commit, the
// verification.
type Step = applier.Step

// The kinds of steps.
const (
	StepStage  = applier.Stage
	StepCommit = applier.Commit
	StepVerify = applier.Check
)

// Op is a command that changes rules; its value is the verb messages use.
type Op string

// The ops.
const (
	OpApply    Op = "apply"
	OpRollback Op = "rollback"
	OpDestroy  Op = "destroy"
)

// Planned is a plan about to be committed.
type Planned struct {
	Op   Op
	Plan *planner.Plan
	// Rollback says which generations a rollback goes between; nil for
	// the other ops.
	Rollback *RollbackFromTo
	// Refusal is why the command will not commit the plan (an apply's
	// ApplyRefusal, a blocked plan, a dump); nil when it goes ahead.
	Refusal error
	// Removal: the plan removes svcnat's set from the backend an apply
	// moves the rules from (Migrate), shown after the plan of the backend
	// it moves them to; Refusal is Destroy's then.
	Removal bool
}

// RollbackFromTo names the generations of a rollback.
type RollbackFromTo struct {
	From int64                // the current generation
	To   state.GenerationInfo // the one whose rules come back
}

// Result is what a command that changes rules did.
type Result struct {
	Op   Op
	Plan *planner.Plan
	// Applied: the plan changed the live rules (false for an empty plan).
	Applied bool
	// Generation is the generation recorded, 0 when none was (an empty
	// plan on a host whose record is right).
	Generation int64
	// Repaired: the rules already matched the plan, but an earlier apply
	// stopped between its commit and its record; this run recorded them.
	Repaired bool
	// Adopted names the live chains ("IPv4 nat SVCNAT-SVC-X") this run
	// took over with Adopt: chains of the prefix its state directory had
	// not recorded, or another state directory wrote. None without Adopt.
	Adopted []string
	// StateDir is where the generation was recorded.
	StateDir string
	// Took is how long the commit and its verification took.
	Took time.Duration
	// Lines is how many lines the commit's transactions held, as the
	// backend wrote them (kube-proxy's "numLines"): what a change cost the
	// kernel.
	Lines int
	// Conntrack is the cleanup of removed UDP endpoints' entries.
	Conntrack ConntrackResult
	// Pending is the apply awaiting confirmation that this one became.
	Pending *state.Pending
	// Probed counts the probes that passed; ProbeConfirmed says they
	// confirmed a pending apply.
	Probed         int
	ProbeConfirmed bool
	// Reverted is the pending apply a revert returned from, and Reason
	// why.
	Reverted *state.Pending
	Reason   string
	// TablesRemoved are the tables a destroy removed ("IPv4 nat"):
	// svcnat's applies had created them, and nothing else was in them.
	TablesRemoved []string
	// KeptRecord: a destroy removed a set the state directory does not
	// record (in the other backend), and kept the record of the set that
	// stays.
	KeptRecord bool
	// MigratedFrom is what an apply that moved svcnat's rules from
	// another backend (Migrate) did there; nil for every other run.
	MigratedFrom *Migration
}

// ConntrackResult says how the conntrack cleanup went. The rules are
// applied either way: a failed cleanup is a warning, not a failed apply.
type ConntrackResult struct {
	Flows int   // flows whose entries were deleted
	Err   error // why the cleanup failed, if it did
}

// stepper reports the applier's steps to the hook and counts the lines
// they write into res. (The applier's fault injection is for its own
// tests.)
func (e *Engine) stepper(res *Result) func(Step) error {
	return func(s Step) error {
		res.Lines += s.Lines
		if e.Hooks.Step != nil {
			e.Hooks.Step(s)
		}
		return nil
	}
}

func (e *Engine) planned(p Planned) {
	if p.Refusal == nil {
		p.Refusal = e.commitRefusal(p.Op, p.Plan)
	}
	if e.Hooks.Planned != nil {
		e.Hooks.Planned(p)
	}
}
