package engine

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/svcnat/svcnat/internal/kernel/backend"
	"github.com/svcnat/svcnat/internal/state"
)

// A state directory records the rules of one network namespace: used
// with another --netns, every recorded chain reads as gone, a rollback
// would write one namespace's rules into another, and a destroy would
// leave the first's in place for good. So the state records the
// namespace by the name the command line gives it (state.Namespace),
// while it owns rules, and every command that reads or writes them
// refuses another (*NamespaceError), as a changed chain prefix is
// refused. The name, not the kernel's cookie (engine/namespace.go): a
// namespace deleted and made again under its name, as a reboot does, is
// the same place to the operator, and its rules are what the next apply
// makes them. Without --netns the name is the one ip netns gives the
// namespace svcnat runs in (Host.RunsIn: `ip netns exec A svcnat` works
// in A, as `svcnat --netns A` does), or none.

// namespaceName is e's network namespace as the state records it: the
// name --netns gives, or without it the ip netns name of the namespace
// svcnat runs in (RunsIn), "" when it has none; /run/netns/NAME, the
// path ip netns gives the namespace NAME, is NAME.
func (e *Engine) namespaceName() string {
	name := e.NetNS
	if name == "" {
		return e.RunsIn
	}
	if !strings.Contains(name, "/") {
		return name
	}
	name = filepath.Clean(name)
	for _, dir := range netnsDirs {
		if rest, ok := strings.CutPrefix(name, dir+"/"); ok && !strings.Contains(rest, "/") {
			return rest
		}
	}
	return name
}

// netnsDirs are where ip netns mounts the namespaces it names.
var netnsDirs = []string{"/run/netns", "/var/run/netns"}

// runningNetNSName is the ip netns name of the network namespace svcnat
// runs in, found as `ip netns identify` finds it: the namespace file
// under /run/netns that is the same file (device and inode) as
// /proc/self/ns/net. "" when none is (the host's own, usually, or a
// namespace ip netns did not make). Comparing files enters no namespace,
// unlike netns.Identity, and both files are open namespaces now,
// so their inodes cannot be another's.
func runningNetNSName() string {
	self, err := os.Stat("/proc/self/ns/net")
	if err != nil {
		return ""
	}
	for _, dir := range netnsDirs {
		ents, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, ent := range ents {
			if fi, err := os.Stat(filepath.Join(dir, ent.Name())); err == nil && os.SameFile(self, fi) {
				return ent.Name()
			}
		}
	}
	return ""
}

// recordNamespace notes in st, about to be recorded, that its rules are
// in e's network namespace (record drops it again when they are none).
func (e *Engine) recordNamespace(st *state.State) {
	st.Namespace = &state.Namespace{Name: e.namespaceName()}
}

// namespaceRefusal refuses op (OpShow for show) when st records the rules
// of another network namespace. A state that records none (nothing owned,
// or written before svcnat recorded it) refuses nothing.
func (e *Engine) namespaceRefusal(op Op, d *state.Dir, st *state.State) error {
	if st.Namespace == nil || st.Namespace.Name == e.namespaceName() {
		return nil
	}
	dir := e.StateDir
	if d != nil {
		dir = d.Path()
	}
	return &NamespaceError{Op: op, Recorded: st.Namespace.Name, Current: e.namespaceName(), StateDir: dir, Backend: st.Backend}
}

// OpShow is show, which changes nothing, where an error names a command.
const OpShow Op = "show"

// NamespaceError refuses a command in a network namespace other than the
// one whose rules the state directory records. Nothing was changed.
type NamespaceError struct {
	Op                Op
	Recorded, Current string // namespace names, "" for one ip netns does not name
	StateDir          string
	Backend           backend.Name // the recorded backend, if any
}

func (e *NamespaceError) Error() string {
	on := ""
	if e.Backend != "" {
		on = " (" + string(e.Backend) + " backend)"
	}
	msg := fmt.Sprintf("state directory %s records the rules of %s%s, and this %s works in %s",
		e.StateDir, namespaceWords(e.Recorded), on, e.Op, namespaceWords(e.Current))
	if e.Op == OpShow {
		return msg
	}
	return msg + "; nothing was changed"
}

// Hint says how to work in either namespace.
func (e *NamespaceError) Hint() string {
	there := "--netns " + e.Recorded
	if e.Recorded == "" {
		there = "no --netns (nor SVCNAT_NETNS)"
	}
	return fmt.Sprintf("run with %s to work on those rules (svcnat destroy there frees this state directory), or give %s a state directory of its own with --state-dir",
		there, namespaceWords(e.Current))
}

// namespaceWords names a namespace in a sentence. "" is no namespace
// ip netns names: svcnat ran in it without --netns, usually the host's
// own, but nothing proves that.
func namespaceWords(name string) string {
	if name == "" {
		return "the network namespace svcnat runs in"
	}
	return "network namespace " + name
}
