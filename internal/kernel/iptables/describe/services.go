package describe

import (
	"github.com/svcnat/svcnat/internal/kernel/backend"
	"github.com/svcnat/svcnat/internal/kernel/iptables/vocab"
)

// ruleService returns the service a rule's comment names, or "".
func ruleService(r backend.Rule) string { return vocab.CommentService(r.Comment()) }

// ownService is the one service the comments of a chain's rules name,
// and whether the chain is shared: its rules name several services or
// carry a shared comment (SERVICES, NODEPORTS, ...). A chain none of whose
// rules has a comment has no service of its own.
func ownService(rs []backend.Rule) (svc string, shared bool) {
	for _, r := range rs {
		c := vocab.ParseComment(r.Comment())
		switch {
		case c.Shared:
			return "", true
		case c.Service == "":
		case svc == "":
			svc = c.Service
		case c.Service != svc:
			return "", true
		}
	}
	return svc, false
}

// indexKey is the key of a chain in a serviceIndex: "table/chain".
func indexKey(table, chain string) string { return table + "/" + chain }

// serviceIndex maps every chain of rs that serves a single service, keyed
// by indexKey ("nat/SVCNAT-SEP-..."), to that service ("ns/name"). Shared
// chains (the built-in chains, SERVICES, NODEPORTS, MARK-MASQ, ...) and
// chains whose service cannot be told are left out. It reads live rules,
// which say their service only in comments: chain names are hashes. (The
// renderer knows the service of each chain it makes and says so in
// backend.Planned.ChainService; this index is for the rules it did not make.)
//
// A chain's service is, in this order:
//   - the one service its own rules' comments name, unless they name
//     several or carry a shared comment;
//   - for a per-service chain (SVC, SVL, EXT, FW or SEP, see vocab.Kind)
//     without comments, as large-cluster mode leaves SEP chains and SVC/SVL
//     chains without a masquerade rule: the service of the rules that jump
//     to it in the same table, each named by the jump's own comment
//     (SERVICES' "ns/svc:p80 cluster IP" -> SVC) or else, transitively, by
//     the chain holding the jump (SVC -> SEP, EXT -> SVL). Jumps whose
//     service is unknown are ignored; jumps naming different services leave
//     the chain out.
//
// A chain is shared when it is built in, when its own rules name several
// services or carry a shared comment, or when a rule with a shared comment
// jumps to it; shared chains are never attributed and never pass a service
// on.
func serviceIndex(prefix string, rs *backend.Ruleset) map[string]string {
	out := map[string]string{}
	if rs == nil {
		return out
	}
	v := vocab.For(prefix)
	for _, t := range rs.Tables {
		x := tableIndex{
			v:         v,
			own:       map[string]string{},
			shared:    map[string]bool{},
			referrers: map[string][]backend.Rule{},
			state:     map[string]int8{},
			resolved:  map[string]string{},
		}
		for _, c := range t.Chains {
			svc, shared := ownService(c.Rules)
			x.own[c.Name] = svc
			if shared || c.Builtin() {
				x.shared[c.Name] = true
			}
			for _, r := range c.Rules {
				tgt := r.Target()
				if tgt == "" || t.Chain(tgt) == nil {
					continue
				}
				x.referrers[tgt] = append(x.referrers[tgt], r)
				if vocab.ParseComment(r.Comment()).Shared {
					x.shared[tgt] = true
				}
			}
		}
		for _, c := range t.Chains {
			if s := x.resolve(c.Name); s != "" {
				out[indexKey(t.Name, c.Name)] = s
			}
		}
	}
	return out
}

// tableIndex resolves the chains of one table for serviceIndex.
type tableIndex struct {
	v         vocab.Vocab
	own       map[string]string         // the service of each chain's own comments
	shared    map[string]bool           // chains that serve every service
	referrers map[string][]backend.Rule // rules jumping to each chain
	state     map[string]int8           // 1 resolving (iptables refuses loops, but a parsed dump may hold one), 2 resolved
	resolved  map[string]string
}

func (x *tableIndex) resolve(chain string) string {
	switch x.state[chain] {
	case 1:
		return "" // a loop of uncommented chains names no service
	case 2:
		return x.resolved[chain]
	}
	x.state[chain] = 1
	svc := ""
	switch {
	case x.shared[chain]:
	case x.own[chain] != "":
		svc = x.own[chain]
	case x.v.KindOf(chain).PerService():
		// Only per-service chains inherit a service from the jumps into
		// them: MARK-MASQ, say, is jumped to from every service's chains,
		// and with a single service all those jumps agree.
		svc = x.fromReferrers(chain)
	}
	x.state[chain], x.resolved[chain] = 2, svc
	return svc
}

// fromReferrers is the one service the jumps into chain name, by their
// comment or else by their chain; "" when none or several.
func (x *tableIndex) fromReferrers(chain string) string {
	svc := ""
	for _, r := range x.referrers[chain] {
		c := vocab.ParseComment(r.Comment())
		s := c.Service
		if s == "" && !c.Shared {
			s = x.resolve(r.Chain)
		}
		switch {
		case s == "":
		case svc == "":
			svc = s
		case s != svc:
			return ""
		}
	}
	return svc
}

// servicesOf adds to out every service that has rules in rs: those named
// by a comment and those of the chains idx attributes.
func servicesOf(out map[string]bool, rs *backend.Ruleset, idx map[string]string) {
	for _, s := range idx {
		out[s] = true
	}
	for _, t := range rs.Tables {
		for _, c := range t.Chains {
			for _, rule := range c.Rules {
				if s := ruleService(rule); s != "" {
					out[s] = true
				}
			}
		}
	}
}
