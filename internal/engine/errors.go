package engine

import (
	"errors"
	"fmt"
	"strings"

	"github.com/svcnat/svcnat/internal/kernel/backend"
	"github.com/svcnat/svcnat/internal/planner"
	"github.com/svcnat/svcnat/internal/state"
)

// Errors a run fails with that callers branch on, from the state
// directory: the lock is held by another svcnat (a *state.LockError names
// it), and a rollback has no earlier generation to go to.
var (
	ErrLocked     = state.ErrLocked
	ErrNoPrevious = state.ErrNoPrevious
)

// ErrCancelled is returned when Hooks.Approve declined a plan; nothing was
// changed. The error says which command was cancelled.
var ErrCancelled = errors.New("cancelled")

type cancelledError struct{ op Op }

func (e cancelledError) Error() string { return string(e.op) + " cancelled; nothing was changed" }
func (e cancelledError) Unwrap() error { return ErrCancelled }

// PrefixChangedError refuses to apply under a chain prefix other than the
// one svcnat applied under: the old chains would stay live and out of reach
// of every command. Destroy (which uses the recorded prefix) comes first.
type PrefixChangedError struct {
	Recorded, Configured string
	StateDir             string
}

func (e *PrefixChangedError) Error() string {
	return fmt.Sprintf("chain_prefix changed from %s to %s; nothing was changed", e.Recorded, e.Configured)
}

// PlanPrefixError refuses a saved plan for a chain prefix other than the
// one svcnat manages on this host.
type PlanPrefixError struct {
	Plan, Recorded string
}

func (e *PlanPrefixError) Error() string {
	return fmt.Sprintf("the plan is for chains %s-*, but svcnat manages %s-* here; nothing was changed", e.Plan, e.Recorded)
}

// BlockedError refuses a plan that deletes a chain a foreign rule jumps
// to: iptables would refuse the deletion, and svcnat never edits rules it
// does not own.
type BlockedError struct {
	Op      Op
	Blocked []planner.Blocked
}

func (e *BlockedError) Error() string {
	lines := make([]string, len(e.Blocked))
	for i, b := range e.Blocked {
		lines[i] = b.String()
	}
	return fmt.Sprintf("rules svcnat does not own jump into chains this %s would delete; nothing was changed:\n  %s",
		e.Op, strings.Join(lines, "\n  "))
}

// StaleError refuses a saved plan whose live snapshot is no longer what
// the kernel holds. Since is what changed, as a plan from the snapshot to
// the live rules.
type StaleError struct {
	Since *planner.Plan
}

func (e *StaleError) Error() string {
	return "stale plan: the live rules changed since it was made; nothing was changed"
}

// UnrecordedError refuses a command that would delete or rewrite chains
// of its prefix that this state directory cannot prove it wrote: no
// generation it keeps has them, and no apply of it began to create them
// (see ownershipRefusal). They are another program's (CNI-*, KUBE-* where
// kube-proxy runs), or an earlier svcnat's whose state directory is lost:
// Engine.Adopt takes them over.
type UnrecordedError struct {
	Op       Op
	Prefix   string
	Chains   []string // "IPv4 nat CNI-HOSTPORT-DNAT", sorted
	StateDir string
}

// unrecordedShown bounds the chains an UnrecordedError names: kube-proxy's
// are thousands.
const unrecordedShown = 20

func (e *UnrecordedError) Error() string {
	shown := e.Chains
	more := ""
	if len(shown) > unrecordedShown {
		shown = shown[:unrecordedShown]
		more = fmt.Sprintf("\n  … and %d more", len(e.Chains)-unrecordedShown)
	}
	return fmt.Sprintf("%s-* chains that %s did not record are in the kernel, and this %s would change or delete them; nothing was changed:\n  %s%s",
		e.Prefix, e.StateDir, e.Op, strings.Join(shown, "\n  "), more)
}

// OwnerError refuses a command on chains of a prefix that svcnat with
// another state directory wrote last in this network namespace: two
// records of one set of chains would undo each other's applies.
type OwnerError struct {
	Prefix   string
	Owner    string // the state directory that wrote them
	StateDir string // this command's
}

func (e *OwnerError) Error() string {
	return fmt.Sprintf("the %s-* chains in this network namespace were written by svcnat with state directory %s, not %s; nothing was changed",
		e.Prefix, e.Owner, e.StateDir)
}

// CrossBackendRollbackError is a rollback to a generation applied on
// another backend than the one svcnat's rules are on now (a migration
// came between): its rules are that backend's, which this one cannot
// write. Moving them back is an apply of that generation's configuration
// with --backend naming the other backend.
type CrossBackendRollbackError struct {
	Generation        int64
	Recorded, Current backend.Name
}

func (e *CrossBackendRollbackError) Error() string {
	return fmt.Sprintf("generation %d was applied on the %s backend, and svcnat's rules are on the %s backend now; rollback cannot move them between backends; nothing was changed",
		e.Generation, e.Recorded, e.Current)
}

// Hint says how to move them.
func (e *CrossBackendRollbackError) Hint() string {
	return fmt.Sprintf("apply that generation's configuration with svcnat apply --backend %s, which moves the rules in one step", e.Recorded)
}
