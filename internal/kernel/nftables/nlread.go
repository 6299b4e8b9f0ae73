package nftables

import (
	"encoding/binary"
	"errors"
	"fmt"

	gnft "github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/svcnat/svcnat/internal/kernel/backend"
	"github.com/svcnat/svcnat/internal/kernel/netns"
)

// Elements are read over netlink (google/nftables), not listed by nft:
// nft 1.0.6 prints each element with many small writes, which at 10,000
// services × 5 endpoints made a listing of the table 4.5 s, of which the
// elements were 2 (`nft -t list table`, the rest, 2.5 s), and of one map
// up to 1.1 s. The kernel's bytes are decoded into nft's text by the
// set's declaration (elementDecoder); a set or map it cannot decode with
// certainty is listed by nft instead.

// nlSet is what the kernel answers for one set or map over netlink:
// whether it exists, and its elements.
type nlSet struct {
	exists bool
	elems  []gnft.SetElement
}

// nlElements reads the elements of the named sets of fam's table over
// one netlink socket, with the ruleset's generation before and after:
// elements read while the generation changed may mix two rulesets.
func (r *Runner) nlElements(fam backend.Family, table string, names []string) (sets map[string]nlSet, genBefore, genAfter uint32, err error) {
	tf := gnft.TableFamilyIPv4
	if fam == backend.IPv6 {
		tf = gnft.TableFamilyIPv6
	}
	sets = map[string]nlSet{}
	err = netns.Do(r.netns, func() error {
		nl, err := netlink.Dial(unix.NETLINK_NETFILTER, nil)
		if err != nil {
			return err
		}
		defer nl.Close()
		if genBefore, err = generation(nl); err != nil {
			return err
		}
		c, err := gnft.New(gnft.AsLasting())
		if err != nil {
			return err
		}
		defer c.CloseLasting()
		t := &gnft.Table{Name: table, Family: tf}
		for _, name := range names {
			// GetSetByName keeps the kernel's error (ENOENT for no
			// such set); GetSetElements flattens it to text.
			if _, err := c.GetSetByName(t, name); errors.Is(err, unix.ENOENT) {
				sets[name] = nlSet{}
				continue
			} else if err != nil {
				return fmt.Errorf("set %s: %w", name, err)
			}
			elems, err := c.GetSetElements(&gnft.Set{Table: t, Name: name})
			if err != nil {
				return fmt.Errorf("the elements of %s: %w", name, err)
			}
			sets[name] = nlSet{exists: true, elems: elems}
		}
		genAfter, err = generation(nl)
		return err
	})
	if err != nil {
		return nil, 0, 0, fmt.Errorf("reading %s %s over netlink: %w", fam, table, err)
	}
	return sets, genBefore, genAfter, nil
}

// generation is the ruleset's generation in the runner's namespace.
func (r *Runner) generation() (uint32, error) {
	var gen uint32
	err := netns.Do(r.netns, func() error {
		nl, err := netlink.Dial(unix.NETLINK_NETFILTER, nil)
		if err != nil {
			return err
		}
		defer nl.Close()
		gen, err = generation(nl)
		return err
	})
	return gen, err
}

// generation is the ruleset's generation (NFT_MSG_GETGEN), which every
// committed transaction changes.
func generation(nl *netlink.Conn) (uint32, error) {
	msgs, err := nl.Execute(netlink.Message{
		Header: netlink.Header{
			Type:  netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_GETGEN),
			Flags: netlink.Request,
		},
		Data: []byte{unix.AF_UNSPEC, unix.NFNETLINK_V0, 0, 0},
	})
	if err != nil {
		return 0, fmt.Errorf("the ruleset's generation: %w", err)
	}
	for _, m := range msgs {
		if len(m.Data) < 4 {
			continue
		}
		ad, err := netlink.NewAttributeDecoder(m.Data[4:])
		if err != nil {
			return 0, fmt.Errorf("the ruleset's generation: %w", err)
		}
		ad.ByteOrder = binary.BigEndian
		for ad.Next() {
			if ad.Type() == unix.NFTA_GEN_ID {
				return ad.Uint32(), nil
			}
		}
	}
	return 0, errors.New("the ruleset's generation: the kernel gave none")
}

// elementRules decodes a set's or map's elements into the model's rules,
// sorted; ok is false when decl or one element is beyond elementDecoder.
func elementRules(name, decl string, elems []gnft.SetElement) ([]backend.Rule, bool) {
	d, ok := newElementDecoder(decl)
	if !ok {
		return nil, false
	}
	rules := make([]backend.Rule, 0, len(elems))
	for _, e := range elems {
		text, ok := d.text(e)
		if !ok {
			return nil, false
		}
		rules = append(rules, backend.NFTElementOf(name, text))
	}
	backend.SortElements(rules)
	return rules, true
}
