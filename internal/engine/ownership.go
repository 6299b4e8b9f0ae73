package engine

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"

	"github.com/svcnat/svcnat/internal/kernel/backend"
	"github.com/svcnat/svcnat/internal/planner"
	"github.com/svcnat/svcnat/internal/state"
)

// svcnat owns the chains named with its prefix, but a name is no proof: a
// prefix such as CNI, KUBE (where kube-proxy runs) or CALI names another
// program's chains, and no list of such prefixes is complete. So a command
// that changes rules deletes or rewrites only chains it can prove this
// state directory wrote: those of a generation it recorded (any it keeps,
// back to its last destroy), and those an apply of it began to create and
// did not record (it was killed: intentFile). Any other chain of the
// prefix refuses the command (*UnrecordedError), unless Engine.Adopt takes
// them over. The canary chains are svcnat's by name: backend.Owns leaves
// them out of every plan.

// intentFile, in the state directory, lists the chains ("IPv4 nat
// SVCNAT-SVC-X") applies of this state directory began to create and did
// not record yet. A commit writes it before its first transaction, so
// that the chains a kill -9 leaves are still provably svcnat's, and the
// next apply clears them; the next recorded generation empties it.
const intentFile = "applying.json"

// intent is the content of intentFile.
type intent struct {
	Chains []string `json:"chains"`
}

func readIntent(d *state.Dir) (*intent, error) {
	data, err := d.ReadFile(intentFile)
	if errors.Is(err, fs.ErrNotExist) {
		return &intent{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the chains an apply began to create: %w", err)
	}
	in := &intent{}
	if err := json.Unmarshal(data, in); err != nil {
		return nil, fmt.Errorf("reading the chains an apply began to create (%s): %w", intentFile, err)
	}
	return in, nil
}

// noteIntent records, before a commit writes desired over live, the chains
// the commit will create, added to those an earlier unfinished apply
// noted (they may still be live). It returns the chains it added, for
// forgetIntent.
func noteIntent(d *state.Dir, desired, live map[backend.Family]*backend.Ruleset) ([]string, error) {
	have := chainSet(live)
	var fresh []string
	for k := range chainSet(desired) {
		if !have[k] {
			fresh = append(fresh, k)
		}
	}
	if len(fresh) == 0 {
		return nil, nil
	}
	in, err := readIntent(d)
	if err != nil {
		return nil, err
	}
	noted := make(map[string]bool, len(in.Chains))
	for _, k := range in.Chains {
		noted[k] = true
	}
	var added []string
	for _, k := range fresh {
		if !noted[k] {
			added = append(added, k)
		}
	}
	if len(added) == 0 {
		return nil, nil
	}
	in.Chains = append(in.Chains, added...)
	if err := writeIntent(d, in); err != nil {
		return nil, fmt.Errorf("recording the chains the apply creates: %w; nothing was changed", err)
	}
	return added, nil
}

func writeIntent(d *state.Dir, in *intent) error {
	if len(in.Chains) == 0 {
		return clearIntent(d)
	}
	slices.Sort(in.Chains)
	data, err := json.Marshal(in)
	if err != nil {
		return err
	}
	return d.WriteFile(intentFile, append(data, '\n'))
}

// forgetIntent drops added (noteIntent's) from the noted chains once the
// applier rolled the commit back: the chains it created are gone, and a
// chain of one of their names made later (by anyone) is no longer
// svcnat's. What an earlier unfinished apply noted stays. A failure only
// leaves the note longer than needed: it is reported with err.
func forgetIntent(d *state.Dir, added []string, err error) error {
	if len(added) == 0 {
		return err
	}
	in, rerr := readIntent(d)
	if rerr == nil {
		in.Chains = slices.DeleteFunc(in.Chains, func(k string) bool { return slices.Contains(added, k) })
		rerr = writeIntent(d, in)
	}
	if rerr != nil {
		return fmt.Errorf("%w; forgetting the chains it would have created failed: %w", err, rerr)
	}
	return err
}

// clearIntent forgets the noted chains once a generation is recorded: the
// live owned chains are then exactly the recorded ones.
func clearIntent(d *state.Dir) error {
	// unlink(2) removes a link itself, never what it points to.
	err := os.Remove(filepath.Join(d.Path(), intentFile))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("the generation is recorded, but forgetting the chains the apply began to create failed: %w", err)
	}
	return nil
}

// chainSet is the set of non-built-in chains in rs (owned rules), named
// as chainKey names them.
func chainSet(rs map[backend.Family]*backend.Ruleset) map[string]bool {
	out := map[string]bool{}
	for f, r := range rs {
		if r == nil {
			continue
		}
		for _, t := range r.Tables {
			for _, c := range t.Chains {
				if !c.Builtin() {
					out[chainKey(f, t.Name, c.Name)] = true
				}
			}
		}
	}
	return out
}

// chainKey names a chain as svcnat reports it: "IPv4 nat SVCNAT-SVC-X".
func chainKey(f backend.Family, table, chain string) string {
	return planner.Left{Family: f, Table: table, Chain: chain}.String()
}

// ownershipRefusal is what every command that changes rules refuses
// before it deletes or rewrites p's live chains, unless Adopt: chains of
// the prefix that another state directory wrote last in this network
// namespace (*OwnerError), and chains of the prefix this state directory
// cannot prove it wrote (*UnrecordedError). d is nil when the state
// directory does not exist yet.
func (e *Engine) ownershipRefusal(op Op, d *state.Dir, st *state.State, p *planner.Plan) error {
	if e.Kernel.ReadOnly() {
		return nil
	}
	// Before Adopt: kube-proxy's chains are never svcnat's to take.
	if err := e.kubeProxyRefusal(op, p); err != nil || e.Adopt {
		return err
	}
	live := chainSet(p.Live)
	if len(live) == 0 {
		return nil // nothing of the prefix to take from anyone
	}
	if err := e.ownerRefusal(p.Prefix); err != nil {
		return err
	}
	unrecorded, err := unrecordedChains(d, st, p, live)
	if err != nil {
		return err
	}
	if len(unrecorded) > 0 {
		return &UnrecordedError{Op: op, Prefix: p.Prefix, Chains: unrecorded, StateDir: e.StateDir}
	}
	return nil
}

// adopted lists the live chains of p that Adopt takes over: what
// ownershipRefusal would refuse without it (every live chain of the
// prefix when another state directory wrote them last, else those this
// one cannot prove it wrote).
func (e *Engine) adopted(d *state.Dir, st *state.State, p *planner.Plan) ([]string, error) {
	live := chainSet(p.Live)
	if len(live) == 0 || e.Kernel.ReadOnly() {
		return nil, nil
	}
	var oe *OwnerError
	if err := e.ownerRefusal(p.Prefix); errors.As(err, &oe) {
		return sortedKeys(live), nil
	} else if err != nil {
		return nil, err
	}
	return unrecordedChains(d, st, p, live)
}

// noteAdopting puts on p, when Adopt is set, the live chains its commit
// would take over (adopted), so that the plan shows them before anything
// is recorded.
func (e *Engine) noteAdopting(d *state.Dir, st *state.State, p *planner.Plan) error {
	if !e.Adopt {
		return nil
	}
	keys, err := e.adopted(d, st, p)
	if err != nil || len(keys) == 0 {
		return err
	}
	take := make(map[string]bool, len(keys))
	for _, k := range keys {
		take[k] = true
	}
	p.Adopting = nil
	for _, f := range backend.Families {
		if p.Live[f] == nil {
			continue
		}
		for _, t := range p.Live[f].Tables {
			for _, c := range t.Chains {
				if l := (planner.Left{Family: f, Table: t.Name, Chain: c.Name}); take[l.String()] {
					p.Adopting = append(p.Adopting, l)
				}
			}
		}
	}
	return nil
}

// unlockedAdopting is noteAdopting for a plan made without the lock
// (plan, plan -destroy), against the state as a command taking it would
// find it.
func (e *Engine) unlockedAdopting(p *planner.Plan) error {
	if !e.Adopt {
		return nil
	}
	d, st, err := e.unlockedState()
	if err != nil {
		return err
	}
	return e.noteAdopting(d, st, p)
}

// kubeProxyCanary is the chain kube-proxy keeps in mangle, nat and filter
// while it runs, as svcnat keeps its canary.
const kubeProxyCanary = "KUBE-PROXY-CANARY"

// kubeProxyRefusal refuses op with the prefix KUBE where kube-proxy runs
// (its canary is in some table): its KUBE-* chains are its own, and two
// writers of one set of chains undo each other's rules; --adopt does not
// change that. A destroy with nothing to remove is not refused: no
// KUBE-* chain is in nat or filter, so it touches none of kube-proxy's
// and has nothing to fight it over. Nat and filter are in p.Live
// already; only when neither holds the canary are the other tables read,
// and only for KUBE.
func (e *Engine) kubeProxyRefusal(op Op, p *planner.Plan) error {
	if p.Prefix != "KUBE" || op == OpDestroy && p.Empty() {
		return nil
	}
	for _, f := range backend.Families {
		for _, t := range p.Live[f].Tables {
			if t.Chain(kubeProxyCanary) != nil {
				return &KubeProxyError{Op: op, Where: chainKey(f, t.Name, kubeProxyCanary)}
			}
		}
	}
	for _, f := range backend.Families {
		rs, err := e.Kernel.Read(f, nil)
		if err != nil {
			if f == backend.IPv4 {
				return err
			}
			continue // a host without ip6tables has no kube-proxy chains there
		}
		for _, t := range rs.Tables {
			if t.Chain(kubeProxyCanary) != nil {
				return &KubeProxyError{Op: op, Where: chainKey(f, t.Name, kubeProxyCanary)}
			}
		}
	}
	return nil
}

// KubeProxyError refuses a command with the chain prefix KUBE in a
// network namespace where kube-proxy runs: its chains are refused, never
// taken, also with --adopt. Nothing was changed.
type KubeProxyError struct {
	Op    Op
	Where string // the canary found: "IPv4 mangle KUBE-PROXY-CANARY"
}

func (e *KubeProxyError) Error() string {
	// True of every command it refuses, also of an apply that would only
	// add chains beside kube-proxy's (its canary alone, in mangle).
	return fmt.Sprintf("kube-proxy runs in this network namespace (%s): its KUBE-* chains are never svcnat's, and svcnat with chain_prefix KUBE would fight it over them; nothing was changed",
		e.Where)
}

// Hint says how svcnat and kube-proxy can share a kernel.
func (e *KubeProxyError) Hint() string {
	return `give svcnat a chain prefix of its own (chain_prefix in the settings block; the default is "SVCNAT")`
}

// unrecordedChains lists, sorted, the chains of live (p.Live's) that no
// generation d keeps since its last destroy has, and
// no unfinished apply of d noted. Of the recorded rules only the chain
// declarations are read, newest generation first, until every live chain
// is accounted for: usually the current generation's files alone (at
// 2,000 services about 20 ms; hashing the live rules to compare with the
// recorded digest costs more).
func unrecordedChains(d *state.Dir, st *state.State, p *planner.Plan, live map[string]bool) ([]string, error) {
	if d == nil {
		return sortedKeys(live), nil
	}
	left := maps.Clone(live)
	in, err := readIntent(d)
	if err != nil {
		return nil, err
	}
	for _, k := range in.Chains {
		delete(left, k)
	}
	for i := len(st.Generations) - 1; i >= 0 && len(left) > 0; i-- {
		if g := st.Generations[i]; g.RulesDigest == blankRulesDigest && g.RevertOf == 0 {
			// A destroy removed every chain of the prefix: those of
			// earlier generations are gone, and a chain of the same name
			// now is someone else's. (A revert is recorded without
			// rules also when a reboot ended a pending apply, and
			// nothing was removed then: the scan goes on.)
			break
		}
		for _, f := range backend.Families {
			data, err := d.ReadGeneration(st.Generations[i].Generation, f.Key())
			if errors.Is(err, fs.ErrNotExist) {
				continue // pruned, or never written: it proves nothing
			}
			if err != nil {
				return nil, err
			}
			for _, k := range generationChains(f, data) {
				delete(left, k)
			}
		}
	}
	return sortedKeys(left), nil
}

// generationChains names the non-built-in chains a generation file
// declares (backend.ScanText), as chainKey names them.
func generationChains(f backend.Family, data []byte) []string {
	chains, _ := backend.ScanText(data)
	out := make([]string, len(chains))
	for i, c := range chains {
		out[i] = chainKey(f, c.Table, c.Chain)
	}
	return out
}

func sortedKeys(set map[string]bool) []string { return slices.Sorted(maps.Keys(set)) }
