package engine

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/svcnat/svcnat/internal/applier"
	"github.com/svcnat/svcnat/internal/planner"
	"github.com/svcnat/svcnat/internal/state"
)

// OpRepair is the owned chains returned to the recorded generation's
// rules, without recording a generation: what reconcile does while it
// holds a reverted configuration.
const OpRepair Op = "repair"

// RepairRecorded makes the owned live rules the current generation's
// recorded rules again, when something (a flush, a firewalld reload, a
// reboot that restored none) changed them: a daemon that may not apply
// its configuration still keeps the rules in force. It goes through the
// same commit as every apply — the lock, the staged transactions, the
// verification, the rollback on a failure — but records nothing: the
// rules are the ones the record names, and the record (a revert's marker
// above all) must stay as it is. prefix is the chain prefix to use when
// the record owns none (the revert of a first apply removed every chain).
//
// Like a commit, it notes the tables it creates (noteCreatedTables) and
// the chains (noteIntent) before it writes, and that this state directory
// wrote the namespace's chains (noteOwner) after.
//
// It refuses while an apply awaits confirmation (a *PendingError): its
// watcher decides what the rules are. It returns a Result whose Applied
// says whether anything changed; its Generation stays 0, as nothing is
// recorded.
func (e *Engine) RepairRecorded(ctx context.Context, prefix string) (*Result, error) {
	var res *Result
	err := e.withLock(ctx, func(d *state.Dir, st *state.State) error {
		if err := refusePending(OpRepair, d, st); err != nil {
			return err
		}
		if err := e.namespaceRefusal(OpRepair, d, st); err != nil {
			return err
		}
		res = &Result{Op: OpRepair, StateDir: d.Path()}
		if st.Generation == 0 {
			return nil // nothing recorded: nothing to keep
		}
		if name := e.Kernel.Name(); st.Backend != "" && st.Backend != name {
			return fmt.Errorf("generation %d was applied with the %s backend, this host uses %s; nothing was changed", st.Generation, st.Backend, name)
		}
		// generationRules refuses files that are not the recorded
		// rules: better nothing than rules no generation describes.
		desired, err := generationRules(d, st, st.Generation)
		if err != nil {
			return err
		}
		if st.Prefix != "" {
			prefix = st.Prefix
		}
		live, err := e.saveLive(desired)
		if err != nil {
			return err
		}
		p := planner.New(prefix, e.Kernel.Name(), desired, live)
		res.Plan = p
		if err := e.ownershipRefusal(OpRepair, d, st, p); err != nil {
			return err
		}
		if err := e.commitRefusal(OpRepair, p); err != nil || p.Empty() {
			return err
		}
		e.planned(Planned{Op: OpRepair, Plan: p})
		// What commit notes before it writes, for the same reasons: a
		// table the repair creates (a reboot restored none) is given
		// back by destroy, and the chains it creates are provably
		// svcnat's should it be killed.
		if err := e.noteCreatedTables(d, p.Desired, live); err != nil {
			return err
		}
		noted, err := noteIntent(d, p.Desired, p.Live)
		if err != nil {
			return err
		}
		opts := applier.Options{Batch: e.Batch, ListLimit: e.Kernel.Limits().ListLimit, Step: e.stepper(res)}
		start := time.Now()
		if err := applier.Apply(ctx, e.Kernel, p, live, opts); err != nil {
			if ae := (*applier.Error)(nil); !errors.As(err, &ae) || ae.RolledBack {
				// As commit: the chains it noted are gone.
				err = forgetIntent(d, noted, err)
			}
			return fmt.Errorf("%s failed: %w", OpRepair, err)
		}
		res.Applied, res.Took = true, time.Since(start)
		if flows := staleFlows(p); len(flows) > 0 && e.Conntrack != nil {
			res.Conntrack.Flows, res.Conntrack.Err = e.Conntrack.Delete(flows)
		}
		// The owned live chains are the recorded ones now: none is
		// an unfinished apply's. And this state directory wrote them
		// (after a reboot the namespace has no owner record at all).
		if err := clearIntent(d); err != nil {
			return err
		}
		return e.noteOwner(p.Prefix, true)
	})
	return res, err
}
