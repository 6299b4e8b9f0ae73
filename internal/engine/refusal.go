package engine

import (
	"errors"
	"fmt"

	"github.com/svcnat/svcnat/internal/kernel/backend"
	"github.com/svcnat/svcnat/internal/planner"
	"github.com/svcnat/svcnat/internal/state"
)

// ApplyRefusal returns the error Apply would refuse p with on this host,
// before changing anything, or nil when Apply would go ahead; p is a plan
// Plan made. It is the check Apply makes (applyRefusal), against the state
// directory as Apply would find it (a pending apply a reboot ended counts
// as settled), so that plan and apply cannot disagree. It reads the state
// without the lock and changes nothing, not even creating the state
// directory; err is a state directory that cannot be read.
//
// A plan made against a saved dump is refused with an error matching
// backend.ErrReadOnly, unless a foreign rule blocks it: the dump is not
// this host, so this host's state directory is not read for it.
func (e *Engine) ApplyRefusal(p *planner.Plan) (refusal, err error) {
	var d *state.Dir
	st := &state.State{}
	if !e.Kernel.ReadOnly() && state.Exists(e.StateDir) {
		if d, err = state.Open(e.StateDir); err != nil {
			return nil, err
		}
		if st, err = d.Load(); err != nil {
			return nil, err
		}
		if st, err = settledByReboot(d, st); err != nil {
			return nil, err
		}
	}
	return e.applyRefusal(d, st, p), nil
}

// applyRefusal is every refusal of Apply, in one place, for the plan p
// under the state st: a state directory of another network namespace, an
// apply awaiting confirmation, a chain prefix other
// than the recorded one, chains of the prefix that another state directory
// wrote or that this one cannot prove it wrote (ownershipRefusal, unless
// Adopt), and what commit refuses (commitRefusal). Against a
// dump only the rules can refuse: the state directory is this host's.
func (e *Engine) applyRefusal(d *state.Dir, st *state.State, p *planner.Plan) error {
	if !e.Kernel.ReadOnly() {
		if err := e.namespaceRefusal(OpApply, d, st); err != nil {
			return err
		}
		if err := refusePending(OpApply, d, st); err != nil {
			return err
		}
		if st.Prefix != "" && st.Prefix != p.Prefix {
			return &PrefixChangedError{Recorded: st.Prefix, Configured: p.Prefix, StateDir: d.Path()}
		}
		if err := e.ownershipRefusal(OpApply, d, st, p); err != nil {
			return err
		}
	}
	return e.commitRefusal(OpApply, p)
}

// savedPlanRefusal words applyRefusal's refusal of a saved plan: its
// prefix is the plan's, which a configuration no longer changes.
func savedPlanRefusal(refusal error) error {
	if pc := (*PrefixChangedError)(nil); errors.As(refusal, &pc) {
		return &PlanPrefixError{Plan: pc.Configured, Recorded: pc.Recorded}
	}
	return refusal
}

// commitRefusal is what every command that changes rules refuses: a plan
// deleting a chain a foreign rule jumps to (*BlockedError), and any commit
// to a saved dump (backend.ErrReadOnly), even an empty one, which would
// record a dump's rules as this host's.
func (e *Engine) commitRefusal(op Op, p *planner.Plan) error {
	if len(p.Blocked) > 0 {
		return &BlockedError{Op: op, Blocked: p.Blocked}
	}
	if e.Kernel.ReadOnly() {
		return fmt.Errorf("%s: %w; nothing was changed", op, backend.ErrReadOnly)
	}
	return nil
}

// settledByReboot returns st as settleReboot leaves it, without recording
// anything: a pending apply a reboot ended is settled by the next command
// that takes the lock, so it refuses nothing.
func settledByReboot(d *state.Dir, st *state.State) (*state.State, error) {
	if !rebootEnded(st.Pending) {
		return st, nil
	}
	prefix, err := settledPrefix(d, st)
	if err != nil {
		return nil, err
	}
	settled := *st
	settled.Pending, settled.Prefix = nil, prefix
	return &settled, nil
}

// settledPrefix is the chain prefix settleReboot records for st's pending
// apply (ownedPrefix of rebootPlan): none when the generation it returns
// to recorded no rules (there was none, or it was a destroy), else the
// pending apply's (an apply keeps the recorded prefix). The generation's
// rules digest says which, without reading its rules (at 10,000 services
// 25 MB); only one recorded without a digest is read.
func settledPrefix(d *state.Dir, st *state.State) (string, error) {
	pd := st.Pending
	if pd.Previous == 0 {
		return "", nil
	}
	if info, ok := st.Info(pd.Previous); ok && info.RulesDigest != "" {
		if info.RulesDigest == blankRulesDigest {
			return "", nil
		}
		return pd.Prefix, nil
	}
	p, _, err := rebootPlan(d, st)
	if err != nil {
		return "", err
	}
	return ownedPrefix(p), nil
}

// blankRulesDigest is the rules digest of a generation without rules, as
// destroy records it.
var blankRulesDigest = func() string {
	_, digest := generationFiles(planner.New("", "", nil, nil))
	return digest
}()
