package cli

import (
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
	HasFamily(f rules.Family) bool
}

func openKernel(g Globals, prefix string) (kernel, error) {
	if g.SaveFile != "" {
		return openDump(g.SaveFile)
	}
	b, err := iptables.ParseBackend(g.Backend)
	if err != nil {
		return nil, err
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

func (k liveKernel) BackendName() string           { return string(k.Backend()) }
func (k liveKernel) HasRandomFully() bool          { return k.Version().HasRandomFully() }
func (k liveKernel) HasFamily(f rules.Family) bool { return true }

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
