package iptables

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/svcnat/svcnat/internal/kernel/backend"
	"github.com/svcnat/svcnat/internal/kernel/iptables/rules"
)

// Texts of the Fake's refusals. Where the kernel's binaries say it the
// same way on both backends, the words are theirs.
var (
	errNoChain   = errors.New("No chain/target/match by that name.")
	errBusy      = errors.New("Device or resource busy")
	errChainDup  = errors.New("Chain already exists.")
	errBadRule   = errors.New("Bad rule (does a matching rule exist in that chain?).")
	errNoTable   = errors.New("no table specified (missing *table line)")
	errUnsupport = errors.New("not modelled by the fake")
)

// extensionTargets are targets that are not chains. natTargets are only
// valid in the nat table.
var (
	extensionTargets = map[string]bool{
		"ACCEPT": true, "DROP": true, "RETURN": true, "QUEUE": true, "NFQUEUE": true, "REJECT": true,
		"DNAT": true, "SNAT": true, "MASQUERADE": true, "REDIRECT": true, "NETMAP": true,
		"MARK": true, "CONNMARK": true, "CT": true, "NOTRACK": true, "LOG": true, "NFLOG": true,
		"TRACE": true, "TCPMSS": true, "TPROXY": true, "CLASSIFY": true, "DSCP": true, "TOS": true,
		"TTL": true, "HL": true, "SET": true, "AUDIT": true, "CHECKSUM": true, "SECMARK": true,
		"CONNSECMARK": true, "IDLETIMER": true, "LED": true, "RATEEST": true, "TEE": true,
		"SYNPROXY": true, "HMARK": true, "ECN": true, "TCPOPTSTRIP": true,
	}
	natTargets = map[string]bool{"DNAT": true, "SNAT": true, "MASQUERADE": true, "REDIRECT": true, "NETMAP": true}
)

// restoreTx applies one payload to a family's rules. cur is a private copy
// of the open table; COMMIT swaps it into live.
type restoreTx struct {
	fam  backend.Family
	live *backend.Ruleset
	cur  *backend.Table
}

func (tx *restoreTx) apply(line string) error {
	switch {
	case line == "" || strings.HasPrefix(line, "#"):
		return nil
	case strings.HasPrefix(line, "*"):
		if tx.cur != nil {
			return fmt.Errorf("Bad argument `%s' (table %s has no COMMIT)", line, tx.cur.Name)
		}
		return tx.open(line[1:])
	case line == "COMMIT":
		if tx.cur == nil {
			return errNoTable
		}
		tx.commit()
		return nil
	case tx.cur == nil:
		return errNoTable
	case strings.HasPrefix(line, ":"):
		return tx.declare(strings.Fields(line[1:]))
	}
	toks, err := rules.Tokenize(line)
	if err != nil {
		return err
	}
	if len(toks) > 0 && strings.HasPrefix(toks[0], "[") {
		toks = toks[1:] // "[packets:bytes]" counters
	}
	if len(toks) == 0 {
		return nil
	}
	return tx.command(toks[0], toks[1:])
}

func (tx *restoreTx) open(name string) error {
	builtins, ok := rules.BuiltinChains(name)
	if !ok {
		return fmt.Errorf("table name '%s' invalid", name)
	}
	if t := tx.live.Table(name); t != nil {
		tx.cur = t.Clone()
		return nil
	}
	tx.cur = &backend.Table{Name: name}
	for _, c := range builtins {
		tx.cur.Chains = append(tx.cur.Chains, &backend.Chain{Name: c, Policy: "ACCEPT"})
	}
	return nil
}

func (tx *restoreTx) commit() {
	for i, t := range tx.live.Tables {
		if t.Name == tx.cur.Name {
			tx.live.Tables[i] = tx.cur
			tx.cur = nil
			return
		}
	}
	tx.live.Tables = append(tx.live.Tables, tx.cur)
	tx.cur = nil
}

func (tx *restoreTx) builtin(name string) bool {
	builtins, _ := rules.BuiltinChains(tx.cur.Name)
	return slices.Contains(builtins, name)
}

// declare handles ":NAME POLICY [counters]": a user chain is created or
// flushed; a built-in chain only gets its policy.
func (tx *restoreTx) declare(f []string) error {
	if len(f) < 2 {
		return errors.New("malformed chain declaration")
	}
	name, policy := f[0], f[1]
	if tx.builtin(name) {
		return tx.setPolicy(name, policy)
	}
	if policy != "-" {
		return fmt.Errorf("can't set policy `%s' on user chain %s", policy, name)
	}
	if c := tx.cur.Chain(name); c != nil {
		c.Rules = nil
		return nil
	}
	return tx.newChain(name)
}

func (tx *restoreTx) newChain(name string) error {
	switch {
	case name == "" || strings.HasPrefix(name, "-") || strings.HasPrefix(name, "!"):
		return fmt.Errorf("invalid chain name `%s'", name)
	case len(name) > rules.MaxChainNameLen:
		return fmt.Errorf("chain name `%s' too long (must be under %d chars)", name, rules.MaxChainNameLen+1)
	case backend.IsBuiltinChain(name) || extensionTargets[name]:
		return fmt.Errorf("chain name `%s' is reserved (not modelled by the fake)", name)
	case tx.cur.Chain(name) != nil:
		return errChainDup
	}
	tx.cur.Chains = append(tx.cur.Chains, &backend.Chain{Name: name, Policy: "-"})
	return nil
}

func (tx *restoreTx) setPolicy(name, policy string) error {
	if !tx.builtin(name) {
		return fmt.Errorf("can't set policy on %s: not a built-in chain of %s", name, tx.cur.Name)
	}
	if policy != "ACCEPT" && policy != "DROP" {
		return fmt.Errorf("bad policy `%s' for built-in chain %s", policy, name)
	}
	tx.cur.Chain(name).Policy = policy
	return nil
}

func (tx *restoreTx) command(cmd string, args []string) error {
	chain := ""
	if len(args) > 0 {
		chain = args[0]
	}
	switch cmd {
	case "-A", "--append":
		c, err := tx.chain(chain)
		if err != nil {
			return err
		}
		r, err := tx.rule(chain, args[1:])
		if err != nil {
			return err
		}
		c.Rules = append(c.Rules, r)
	case "-I", "--insert":
		c, err := tx.chain(chain)
		if err != nil {
			return err
		}
		pos, rest := 1, args[1:]
		if len(rest) > 0 && isInt(rest[0]) {
			pos, _ = strconv.Atoi(rest[0])
			rest = rest[1:]
		}
		if pos < 1 {
			return fmt.Errorf("Invalid rule number `%d'", pos)
		}
		if pos > len(c.Rules)+1 {
			return errors.New("Index of insertion too big.")
		}
		r, err := tx.rule(chain, rest)
		if err != nil {
			return err
		}
		c.Rules = slices.Insert(c.Rules, pos-1, r)
	case "-D", "--delete":
		return tx.deleteRule(chain, args)
	case "-N", "--new-chain", "--new":
		return tx.newChain(chain)
	case "-X", "--delete-chain":
		return tx.deleteChain(chain)
	case "-F", "--flush":
		if chain == "" {
			for _, c := range tx.cur.Chains {
				c.Rules = nil
			}
			return nil
		}
		c, err := tx.chain(chain)
		if err != nil {
			return err
		}
		c.Rules = nil
	case "-P", "--policy":
		if len(args) != 2 {
			return errors.New("-P takes a chain and a policy")
		}
		return tx.setPolicy(args[0], args[1])
	case "-Z", "--zero":
		// counters are not modelled
	default:
		return fmt.Errorf("command %s: %w", cmd, errUnsupport)
	}
	return nil
}

func (tx *restoreTx) chain(name string) (*backend.Chain, error) {
	if c := tx.cur.Chain(name); c != nil {
		return c, nil
	}
	return nil, errNoChain
}

// rule canonicalizes a rule and checks its target as the kernel would.
func (tx *restoreTx) rule(chain string, args []string) (backend.Rule, error) {
	r, err := rules.CanonicalRule(tx.fam, backend.Rule{Chain: chain, Args: args})
	if err != nil {
		return r, err
	}
	t := r.Target()
	switch {
	case t == "":
	case tx.builtin(t) || backend.IsBuiltinChain(t):
		return r, fmt.Errorf("cannot jump to built-in chain %s", t)
	case tx.cur.Chain(t) != nil:
	case !extensionTargets[t]:
		return r, fmt.Errorf("Chain '%s' does not exist", t)
	case t == "DROP" && tx.cur.Name == "nat":
		return r, errors.New(`The "nat" table is not intended for filtering, the use of DROP is therefore inhibited.`)
	case natTargets[t] && tx.cur.Name != "nat":
		return r, fmt.Errorf("target %s is only valid in the nat table", t)
	}
	return r, nil
}

func (tx *restoreTx) deleteRule(chain string, args []string) error {
	c, err := tx.chain(chain)
	if err != nil {
		return err
	}
	if len(args) == 2 && isInt(args[1]) {
		n, _ := strconv.Atoi(args[1])
		if n < 1 || n > len(c.Rules) {
			return errors.New("Index of deletion too big.")
		}
		c.Rules = slices.Delete(c.Rules, n-1, n)
		return nil
	}
	r, err := rules.CanonicalRule(tx.fam, backend.Rule{Chain: chain, Args: args[1:]})
	if err != nil {
		return err
	}
	for i, have := range c.Rules {
		if slices.Equal(have.Args, r.Args) {
			c.Rules = slices.Delete(c.Rules, i, i+1)
			return nil
		}
	}
	return errBadRule
}

// deleteChain handles -X: the chain must be a user chain, empty, and not
// the target of any rule. Without a name every user chain goes, under the
// same conditions.
func (tx *restoreTx) deleteChain(name string) error {
	var doomed []*backend.Chain
	if name == "" {
		for _, c := range tx.cur.Chains {
			if !tx.builtin(c.Name) {
				doomed = append(doomed, c)
			}
		}
	} else {
		c, err := tx.chain(name)
		if err != nil {
			return err
		}
		if tx.builtin(name) {
			return fmt.Errorf("cannot delete built-in chain %s", name)
		}
		doomed = []*backend.Chain{c}
	}
	for _, c := range doomed {
		if len(c.Rules) > 0 {
			return fmt.Errorf("chain %s is not empty: %w", c.Name, errBusy)
		}
		if by := tx.referrer(c.Name); by != "" {
			return fmt.Errorf("chain %s is referenced from %s: %w", c.Name, by, errBusy)
		}
	}
	tx.cur.Chains = slices.DeleteFunc(tx.cur.Chains, func(c *backend.Chain) bool { return slices.Contains(doomed, c) })
	return nil
}

// referrer names a chain holding a rule that targets name, or "".
func (tx *restoreTx) referrer(name string) string {
	for _, c := range tx.cur.Chains {
		for _, r := range c.Rules {
			if r.Target() == name {
				return c.Name
			}
		}
	}
	return ""
}

func isInt(s string) bool {
	_, err := strconv.Atoi(s)
	return err == nil
}
