package iptables

import (
	"errors"
	"fmt"
	"strings"

	goipt "github.com/coreos/go-iptables/iptables"

	"github.com/svcnat/svcnat/internal/kernel/backend"
	"github.com/svcnat/svcnat/internal/kernel/iptables/rules"
	"github.com/svcnat/svcnat/internal/kernel/netns"
)

// command returns go-iptables over cmd (an iptables command) for fam.
// Making one runs cmd --version.
func command(cmd string, fam backend.Family, wait int) (*goipt.IPTables, error) {
	proto := goipt.ProtocolIPv4
	if fam == backend.IPv6 {
		proto = goipt.ProtocolIPv6
	}
	return goipt.New(goipt.Path(cmd), goipt.IPFamily(proto), goipt.Timeout(wait))
}

// listChain runs ipt -t table -S chain in namespace ns and parses the
// rules it prints, which iptables prints exactly as iptables-save does. ok
// is false when the chain does not exist: iptables exits 1 then (nft also
// when the table does not).
func listChain(ns string, ipt *goipt.IPTables, table, chain string) (out []backend.Rule, ok bool, err error) {
	err = netns.Do(ns, func() error {
		lines, err := ipt.List(table, chain)
		var ge *goipt.Error
		if errors.As(err, &ge) && ge.ExitStatus() == 1 {
			return nil // no such chain (or table)
		}
		if err != nil {
			return err
		}
		ok = true
		for _, l := range lines {
			if !strings.HasPrefix(l, "-A ") {
				continue // -N CHAIN, -P CHAIN POLICY
			}
			toks, err := rules.Tokenize(l)
			if err != nil || len(toks) < 2 {
				return fmt.Errorf("reading %q: %v", l, err)
			}
			out = append(out, backend.Rule{Chain: toks[1], Args: toks[2:]})
		}
		return nil
	})
	return out, ok, err
}
