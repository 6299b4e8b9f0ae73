package describe

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/svcnat/svcnat/internal/kernel/backend"
	"github.com/svcnat/svcnat/internal/kernel/iptables/render"
	"github.com/svcnat/svcnat/internal/kernel/iptables/rules"
	"github.com/svcnat/svcnat/internal/kernel/iptables/vocab"
)

// A saved plan's desired rules are data that whoever can write the file
// chooses, and apply writes them as root. The plan file's digest catches
// an edit by someone who does not recompute it; CheckDesired is what holds
// against someone who does: it admits only rules of the shapes svcnat
// writes, in the places it writes them. It cannot know the configuration
// the plan came from, so within those shapes (which endpoint a DNAT goes
// to, which port a service's DROP names) it admits what render could have
// written for some configuration.

// kindTables are the tables each kind of owned chain is written in
// (render/names.go and render/service.go).
var kindTables = map[vocab.Kind][]string{
	vocab.Services:         {rules.TableNAT, rules.TableFilter},
	vocab.NodePorts:        {rules.TableNAT, rules.TableFilter},
	vocab.ExternalServices: {rules.TableFilter},
	vocab.Forward:          {rules.TableFilter},
	vocab.ProxyFirewall:    {rules.TableFilter},
	vocab.Firewall:         {rules.TableFilter},
	vocab.Postrouting:      {rules.TableNAT},
	vocab.MarkMasq:         {rules.TableNAT},
	vocab.SVC:              {rules.TableNAT},
	vocab.SVL:              {rules.TableNAT},
	vocab.EXT:              {rules.TableNAT},
	vocab.FW:               {rules.TableNAT},
	vocab.SEP:              {rules.TableNAT},
}

// verdicts are the rules render writes with a target that is not a chain
// (render.Verdicts), as shapes, per table and kind of chain: the only
// places and forms in which a saved plan may ACCEPT, DROP, REJECT, DNAT,
// MARK, MASQUERADE or RETURN. Taken from render itself, they follow it.
type verdicts struct {
	shapes  map[string]map[vocab.Kind][]verdict
	targets map[string][]string // per table, sorted
}

type verdict struct{ target, shape string }

func newVerdicts(f backend.Family, v vocab.Vocab) (*verdicts, error) {
	rendered, err := render.Verdicts(f, v.Prefix)
	if err != nil {
		return nil, err
	}
	vd := &verdicts{shapes: map[string]map[vocab.Kind][]verdict{}, targets: map[string][]string{}}
	for table, chains := range rendered {
		vd.shapes[table] = map[vocab.Kind][]verdict{}
		for chain, rs := range chains {
			k := v.KindOf(chain)
			for _, r := range rs {
				sh, _ := shape(r)
				if e := (verdict{r.Target(), sh}); !slices.Contains(vd.shapes[table][k], e) {
					vd.shapes[table][k] = append(vd.shapes[table][k], e)
				}
				if !slices.Contains(vd.targets[table], r.Target()) {
					vd.targets[table] = append(vd.targets[table], r.Target())
				}
			}
		}
		slices.Sort(vd.targets[table])
	}
	return vd, nil
}

// refusal says why r, whose target is no chain, may not be a rule of a
// chain of kind k in table, or "". mark is the masquerade mark of the
// rules checked before ("" when none had one), and becomes r's.
func (vd *verdicts) refusal(table string, k vocab.Kind, r backend.Rule, mark *string) string {
	target := r.Target()
	if !slices.Contains(vd.targets[table], target) {
		return fmt.Sprintf("svcnat jumps only to its own chains of the table and to %s", strings.Join(vd.targets[table], ", "))
	}
	var kinds []string
	var forms []string
	for kk, vs := range vd.shapes[table] {
		for _, e := range vs {
			if e.target != target {
				continue
			}
			if !slices.Contains(kinds, string(kk)) {
				kinds = append(kinds, string(kk))
			}
			if kk == k {
				forms = append(forms, e.shape)
			}
		}
	}
	if len(forms) == 0 {
		slices.Sort(kinds)
		return fmt.Sprintf("svcnat writes %s only in %s chains", target, strings.Join(kinds, " and "))
	}
	sh, m := shape(r)
	if !slices.Contains(forms, sh) {
		slices.Sort(forms)
		return fmt.Sprintf("svcnat writes %s in %s chains only as: %s", target, k, strings.Join(forms, "; "))
	}
	if m != "" {
		if *mark != "" && *mark != m {
			return fmt.Sprintf("svcnat writes one masquerade mark in every rule: %s here, %s before", m, *mark)
		}
		*mark = m
	}
	return ""
}

// shape is r without what differs from one configuration to another: its
// comments, and in place of a service's address, port and protocol, an
// endpoint's address and port, an affinity list's name and the masquerade
// bit, placeholders. mark is the mark r names, "" when none.
func shape(r backend.Rule) (sh, mark string) {
	var out []string
	proto := ""
	for i := 0; i < len(r.Args); i++ {
		a, next := r.Args[i], ""
		if i+1 < len(r.Args) {
			next = r.Args[i+1]
		}
		switch {
		case (a == "-m" || a == "--match") && next == "comment":
			i++
			continue
		case a == "--comment":
			i++
			continue
		case (a == "-d" || a == "--destination") && isHost(next):
			out, i = append(out, a, "<addr>"), i+1
			continue
		case a == "--dport" && isPort(next):
			out, i = append(out, a, "<port>"), i+1
			continue
		case (a == "-p" || a == "--protocol" || a == "-m" || a == "--match") && slices.Contains(protocols, next) && (proto == "" || proto == next):
			proto = next
			out, i = append(out, a, "<proto>"), i+1
			continue
		case (a == "--mark" || a == "--set-xmark") && oneBitMark(next):
			val, mask, _ := strings.Cut(next, "/")
			mark = val
			form := "<mark>/<mark>"
			if mask != val {
				form = "<mark>/0x0"
			}
			out, i = append(out, a, form), i+1
			continue
		case a == "--to-destination" && isAddrPort(next):
			out, i = append(out, a, "<addr:port>"), i+1
			continue
		case a == "--name" && next != "":
			out, i = append(out, a, "<name>"), i+1
			continue
		}
		out = append(out, a)
	}
	return strings.Join(out, " "), mark
}

func isHost(s string) bool {
	p, err := netip.ParsePrefix(s)
	return err == nil && p.IsSingleIP()
}

func isPort(s string) bool {
	n, err := strconv.Atoi(s)
	return err == nil && n > 0 && n < 1<<16 && strconv.Itoa(n) == s
}

func isAddrPort(s string) bool {
	_, err := netip.ParseAddrPort(s)
	return err == nil
}

// matches are the match modules render writes (-p tcp, udp and sctp load
// the protocol's own).
var matches = []string{"addrtype", "comment", "conntrack", "mark", "recent", "statistic", "tcp", "udp", "sctp"}

// protocols are the protocols a service port may have.
var protocols = []string{"tcp", "udp", "sctp"}

// DesiredRuleError names a desired rule (or chain, or table) of a saved
// plan that svcnat could not have written, and why. A plan file holds each
// family's desired rules as one JSON string, so the file's line numbers
// say nothing: the rule is named by its family, table and iptables-save
// line instead.
type DesiredRuleError struct {
	Family backend.Family
	Table  string
	Chain  string        // "" when the whole table is refused
	Rule   *backend.Rule // nil when the whole chain is refused
	Reason string
}

func (e *DesiredRuleError) Error() string {
	switch {
	case e.Chain == "":
		return fmt.Sprintf("the plan's desired %s rules hold table %s: %s", e.Family, e.Table, e.Reason)
	case e.Rule == nil:
		return fmt.Sprintf("the plan's desired %s chain %s (table %s) is not one svcnat writes: %s", e.Family, e.Chain, e.Table, e.Reason)
	}
	return fmt.Sprintf("the plan's desired %s rule %q (table %s) is not one svcnat writes: %s", e.Family, e.Rule.String(), e.Table, e.Reason)
}

// CheckDesired refuses desired rules that svcnat, with chain prefix
// prefix, could not have written (a *DesiredRuleError naming the first):
// tables other than nat and filter; chains other than the built-in ones
// and owned chains of the kinds kube-proxy names, each in its own table;
// in a built-in chain, any rule but svcnat's own jumps, byte for byte
// (render.BuiltinJumps); in an owned chain, a jump to anything but an
// owned chain of the same table, a goto, a match module or protocol
// render never writes, and a verdict (ACCEPT, DROP, REJECT, DNAT, MARK,
// MASQUERADE, RETURN) other than one render writes in that kind of chain,
// with the same matches and options (render.Verdicts: an ACCEPT only in
// KUBE-FORWARD, of the masquerade mark or of established connections, and
// in KUBE-NODEPORTS, of one TCP port), or with a masquerade mark other
// than the one of the plan's other rules.
func (Describer) CheckDesired(prefix string, desired map[backend.Family]*backend.Ruleset) error {
	mark := ""
	for _, f := range backend.Families {
		rs := desired[f]
		if rs == nil {
			continue
		}
		jumps, err := render.BuiltinJumps(f, prefix)
		if err != nil {
			return err
		}
		vd, err := newVerdicts(f, vocab.For(prefix))
		if err != nil {
			return err
		}
		for _, t := range rs.Tables {
			if err := checkTable(f, prefix, t, jumps[t.Name], vd, &mark); err != nil {
				return err
			}
		}
	}
	return nil
}

func checkTable(f backend.Family, prefix string, t *backend.Table, jumps []backend.Rule, vd *verdicts, mark *string) error {
	if t.Name != rules.TableNAT && t.Name != rules.TableFilter {
		if len(t.Chains) == 0 {
			return nil
		}
		return &DesiredRuleError{Family: f, Table: t.Name, Reason: "svcnat writes only the nat and filter tables"}
	}
	allowed := map[string]bool{}
	for _, j := range jumps {
		allowed[j.String()] = true
	}
	// The built-in chains first: a jump from one is what lets anything
	// else in, so it is the rule to name.
	for _, c := range t.Chains {
		if !c.Builtin() {
			continue
		}
		if !builtinOf(t.Name, c.Name) {
			return &DesiredRuleError{Family: f, Table: t.Name, Chain: c.Name, Reason: "the table has no such built-in chain"}
		}
		for i := range c.Rules {
			if !allowed[c.Rules[i].String()] {
				return &DesiredRuleError{Family: f, Table: t.Name, Chain: c.Name, Rule: &c.Rules[i],
					Reason: "in a built-in chain svcnat writes only its jumps into its fixed chains"}
			}
		}
	}
	// Then the chains, before the rules that jump to them.
	v := vocab.For(prefix)
	for _, c := range t.Chains {
		if c.Builtin() {
			continue
		}
		if reason := ownedChainRefusal(v, t.Name, c.Name); reason != "" {
			return &DesiredRuleError{Family: f, Table: t.Name, Chain: c.Name, Reason: reason}
		}
	}
	for _, c := range t.Chains {
		if c.Builtin() {
			continue
		}
		for i := range c.Rules {
			reason := ruleRefusal(v, t, c.Rules[i])
			if reason == "" && c.Rules[i].Target() != "" && t.Chain(c.Rules[i].Target()) == nil {
				reason = vd.refusal(t.Name, v.KindOf(c.Name), c.Rules[i], mark)
			}
			if reason != "" {
				return &DesiredRuleError{Family: f, Table: t.Name, Chain: c.Name, Rule: &c.Rules[i], Reason: reason}
			}
		}
	}
	return nil
}

// builtinOf reports whether chain is one of table's built-in chains.
func builtinOf(table, chain string) bool {
	bs, _ := rules.BuiltinChains(table)
	return slices.Contains(bs, chain)
}

// ownedChainRefusal says why chain may not be a user chain of table, or "".
func ownedChainRefusal(v vocab.Vocab, table, chain string) string {
	if !backend.Owns(v.Prefix, chain) {
		return fmt.Sprintf("svcnat writes only chains named %s-…", v.Prefix)
	}
	k := v.KindOf(chain)
	if k == "" {
		return "no kind of chain svcnat writes is named so"
	}
	if k.PerService() && !isHash(strings.TrimPrefix(chain, v.Prefix+"-"+string(k)+"-")) {
		return fmt.Sprintf("a %s chain is named by a 16-character hash", k)
	}
	if slices.Contains(kindTables[k], table) {
		return ""
	}
	return fmt.Sprintf("svcnat writes %s chains only in table %s", k, strings.Join(kindTables[k], " and "))
}

// isHash reports whether s is a hash as vocab names chains with: 16
// characters of the standard base32 alphabet.
func isHash(s string) bool {
	if len(s) != 16 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !(s[i] >= 'A' && s[i] <= 'Z' || s[i] >= '2' && s[i] <= '7') {
			return false
		}
	}
	return true
}

// ruleRefusal says why r may not be a rule of an owned chain of t, or "".
func ruleRefusal(v vocab.Vocab, t *backend.Table, r backend.Rule) string {
	target, opts := "", []string(nil)
	for i := 0; i < len(r.Args); i++ {
		a, next := r.Args[i], ""
		if i+1 < len(r.Args) {
			next = r.Args[i+1]
		}
		switch a {
		case "--comment":
			i++ // a comment is text, whatever it looks like
		case "-m", "--match":
			if !slices.Contains(matches, next) {
				return fmt.Sprintf("svcnat writes no -m %s match", next)
			}
			i++
		case "-p", "--protocol":
			if !slices.Contains(protocols, strings.ToLower(next)) {
				return fmt.Sprintf("svcnat writes no -p %s rule", next)
			}
			i++
		case "-g", "--goto":
			return "svcnat writes no goto"
		case "-j", "--jump":
			// The target comes last, its options after it.
			target, opts = next, r.Args[i+2:]
			i = len(r.Args)
		}
	}
	switch {
	case target == "":
		return "" // a comment alone: the FW chain's "other traffic ... will be dropped"
	case backend.Owns(v.Prefix, target) && v.KindOf(target) != "" && t.Chain(target) != nil:
		if len(opts) > 0 {
			return fmt.Sprintf("svcnat writes no jump with %s", strings.Join(opts, " "))
		}
	}
	// Any other target: verdicts.refusal.
	return ""
}

// oneBitMark reports whether s is "M/0x0" (flip) or "M/M" (set) for a
// mark M of one bit, as MARK --xor-mark and --or-mark canonicalize.
func oneBitMark(s string) bool {
	val, mask, ok := strings.Cut(s, "/")
	v, err := strconv.ParseUint(strings.TrimPrefix(val, "0x"), 16, 32)
	if !ok || err != nil || !strings.HasPrefix(val, "0x") || v == 0 || v&(v-1) != 0 {
		return false
	}
	return mask == "0x0" || mask == val
}
