package cli

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"

	"github.com/svcnat/svcnat/applier"
	"github.com/svcnat/svcnat/iptables"
	"github.com/svcnat/svcnat/rules"
)

// kernel is what the commands need of the rules they read and write: the
// live kernel through iptables, or a saved dump (--iptables-save) that can
// be planned against but not applied to.
type kernel interface {
	applier.Kernel
	BackendName() string
	HasRandomFully() bool
}

// openKernel picks the backend and opens it. Both backends are surveyed
// even when --backend names one: rules written to one are invisible to the
// other, so svcnat refuses to write a second set where its chains already
// live in the other backend, and says so when both hold rules.
func openKernel(g Globals, prefix string) (kernel, error) {
	if g.SaveFile != "" {
		return openDump(g.SaveFile)
	}
	b, err := iptables.ParseBackend(g.Backend)
	if err != nil {
		return nil, err
	}
	d, err := iptables.Survey(g.NetNS, prefix)
	if err != nil {
		if errors.Is(err, iptables.ErrBothBackends) {
			return nil, withHint(err, "remove one set (svcnat destroy --backend nft|legacy), then run again")
		}
		if os.Geteuid() != 0 {
			return nil, withHint(err, "reading the live rules needs root; or plan against a dump with --iptables-save FILE")
		}
		return nil, err
	}
	switch {
	case b == iptables.Auto:
		b = d.Backend
		if d.NFT.Rules > 0 && d.Legacy.Rules > 0 && g.stderr != nil {
			fmt.Fprintf(g.stderr, "svcnat: warning: both iptables backends hold rules; %s\n", d.Reason)
		}
	case b == iptables.NFT && len(d.Legacy.Owned) > 0, b == iptables.Legacy && len(d.NFT.Owned) > 0:
		return nil, withHint(fmt.Errorf("--backend %s, but svcnat's chains are in the other backend (%s); nothing was changed", b, d.Reason),
			"use --backend auto, or destroy the rules in the other backend first")
	}
	ipt, err := iptables.New(iptables.Options{Backend: b, NetNS: g.NetNS, ChainPrefix: prefix})
	if err != nil {
		if os.Geteuid() != 0 {
			return nil, withHint(err, "reading the live rules needs root; or plan against a dump with --iptables-save FILE")
		}
		return nil, err
	}
	return liveKernel{ipt}, nil
}

type liveKernel struct{ iptables.Interface }

func (k liveKernel) BackendName() string  { return string(k.Backend()) }
func (k liveKernel) HasRandomFully() bool { return k.Version().HasRandomFully() }

// dumpKernel plans against saved iptables-save output: FILE for IPv4 and,
// when it exists, FILE.v6 for IPv6.
type dumpKernel struct {
	sets map[rules.Family]*rules.Ruleset
}

func openDump(path string) (kernel, error) {
	k := dumpKernel{sets: map[rules.Family]*rules.Ruleset{}}
	for f, p := range map[rules.Family]string{rules.IPv4: path, rules.IPv6: path + ".v6"} {
		data, err := os.ReadFile(p)
		if err != nil {
			if f == rules.IPv6 && os.IsNotExist(err) {
				continue
			}
			return nil, fmt.Errorf("reading --iptables-save: %w", err)
		}
		rs, err := rules.ParseSave(f, strings.NewReader(string(data)))
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", p, err)
		}
		k.sets[f] = rs
	}
	return k, nil
}

func (k dumpKernel) Save(f rules.Family) (*rules.Ruleset, []byte, error) {
	if rs, ok := k.sets[f]; ok {
		return rs, nil, nil
	}
	return &rules.Ruleset{Family: f}, nil, nil
}

func (k dumpKernel) Restore(rules.Family, []byte, iptables.RestoreFlags) error {
	return withHint(fmt.Errorf("cannot change a saved dump"), "drop --iptables-save to work on the live rules")
}

func (k dumpKernel) BackendName() string           { return "file" }
func (k dumpKernel) HasRandomFully() bool          { return true }
func (k dumpKernel) HasFamily(f rules.Family) bool { _, ok := k.sets[f]; return ok }

// localAddresses lists the host's addresses (in --netns when given), for
// node_port_addresses.
func localAddresses(netns string) ([]netip.Addr, error) {
	var out []netip.Addr
	err := iptables.InNetNS(netns, func() error {
		addrs, err := net.InterfaceAddrs()
		if err != nil {
			return err
		}
		for _, a := range addrs {
			if p, err := netip.ParsePrefix(a.String()); err == nil {
				out = append(out, p.Addr())
			}
		}
		return nil
	})
	return out, err
}
