package nftables

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"strings"

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
// whether it exists, its handle, and its elements.
type nlSet struct {
	exists  bool
	handle  uint64
	ident   uint64 // setIdentity
	dynamic bool   // "flags dynamic": its elements are not read
	elems   []gnft.SetElement
}

// setIdentity tells one set from another for the declarations
// remembered (Runner.remember): its handle with the attributes its
// declaration is made of (key and data types and lengths, flags, and the
// user data holding typeof's expressions and the comment). The handle
// alone could come again: a namespace deleted and made again under its
// name (reconcile follows it) numbers its tables and sets from 1 again.
func setIdentity(sa map[uint16][]byte) uint64 {
	h := fnv.New64a()
	for _, a := range []uint16{nftaSetHandle, unix.NFTA_SET_KEY_TYPE, unix.NFTA_SET_KEY_LEN, unix.NFTA_SET_DATA_TYPE,
		unix.NFTA_SET_DATA_LEN, unix.NFTA_SET_FLAGS, unix.NFTA_SET_USERDATA} {
		h.Write([]byte{byte(a), byte(len(sa[a]))})
		h.Write(sa[a])
	}
	return h.Sum64()
}

// nlRead is one read over netlink: the ruleset's generation before and
// after it, the table's handle (0 when there is no table), the sets'.
type nlRead struct {
	genBefore, genAfter uint32
	table               uint64
	sets                map[string]nlSet
}

// consistent reports a read during which the ruleset did not change.
func (n *nlRead) consistent() bool { return n.genBefore == n.genAfter }

// Attributes google/nftables does not read (linux/netfilter/nf_tables.h).
const (
	nftaTableHandle = 4  // NFTA_TABLE_HANDLE
	nftaSetHandle   = 16 // NFTA_SET_HANDLE
)

// nlElements reads the elements of the named sets of fam's table (nil:
// of every set it has) over netlink, with the table's and the sets' handles, which the kernel
// gives each object it makes and never reuses while the namespace
// lives (the table's), or while the table does (the set's): a set's
// handles are the same only while it is the same set, declared the same.
func (r *Runner) nlElements(fam backend.Family, table string, names []string) (*nlRead, error) {
	tf := tableFamily(fam)
	read := &nlRead{sets: map[string]nlSet{}}
	err := netns.Do(r.netns, func() error {
		nl, err := netlink.Dial(unix.NETLINK_NETFILTER, nil)
		if err != nil {
			return err
		}
		defer nl.Close()
		if read.genBefore, err = generation(nl); err != nil {
			return err
		}
		ta, err := objects(nl, unix.NFT_MSG_GETTABLE, byte(tf), false,
			netlink.Attribute{Type: unix.NFTA_TABLE_NAME, Data: []byte(table + "\x00")})
		switch {
		case errors.Is(err, unix.ENOENT):
			for _, name := range names {
				read.sets[name] = nlSet{}
			}
			read.genAfter, err = generation(nl)
			return err
		case err != nil:
			return fmt.Errorf("table %s: %w", table, err)
		}
		read.table = u64(ta[0][nftaTableHandle])
		tableAttr := netlink.Attribute{Type: unix.NFTA_SET_TABLE, Data: []byte(table + "\x00")}
		var found []map[uint16][]byte
		if names == nil {
			if found, err = objects(nl, unix.NFT_MSG_GETSET, byte(tf), true, tableAttr); err != nil {
				return fmt.Errorf("the sets of %s: %w", table, err)
			}
		}
		for _, name := range names {
			sa, err := objects(nl, unix.NFT_MSG_GETSET, byte(tf), false, tableAttr,
				netlink.Attribute{Type: unix.NFTA_SET_NAME, Data: []byte(name + "\x00")})
			if errors.Is(err, unix.ENOENT) {
				read.sets[name] = nlSet{}
				continue
			} else if err != nil {
				return fmt.Errorf("set %s: %w", name, err)
			}
			found = append(found, sa...)
		}
		c, err := gnft.New(gnft.AsLasting())
		if err != nil {
			return err
		}
		defer c.CloseLasting()
		t := &gnft.Table{Name: table, Family: tf}
		for _, sa := range found {
			if u32(sa[unix.NFTA_SET_FLAGS])&unix.NFT_SET_ANONYMOUS != 0 {
				continue // a rule's, which lists it
			}
			name, _, _ := strings.Cut(string(sa[unix.NFTA_SET_NAME]), "\x00")
			s := nlSet{exists: true, handle: u64(sa[nftaSetHandle]), ident: setIdentity(sa), dynamic: u32(sa[unix.NFTA_SET_FLAGS])&unix.NFT_SET_EVAL != 0}
			if s.handle == 0 || name == "" {
				return fmt.Errorf("set %q: the kernel gave no name or handle", name)
			}
			if !s.dynamic {
				// a dynamic set's elements are state (parseListing)
				if s.elems, err = c.GetSetElements(&gnft.Set{Table: t, Name: name}); err != nil {
					return fmt.Errorf("the elements of %s: %w", name, err)
				}
			}
			read.sets[name] = s
		}
		read.genAfter, err = generation(nl)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("reading %s %s over netlink: %w", fam, table, err)
	}
	return read, nil
}

// objects asks the kernel for one object (a table, a set) by the
// attributes that name it, or with dump for every one they name (the
// sets of a table), and returns the attributes of each answer; the
// kernel's error (ENOENT: no such object) is kept.
func objects(nl *netlink.Conn, msgType uint16, family byte, dump bool, name ...netlink.Attribute) ([]map[uint16][]byte, error) {
	data, err := netlink.MarshalAttributes(name)
	if err != nil {
		return nil, err
	}
	flags := netlink.Request
	if dump {
		flags |= netlink.Dump
	}
	msgs, err := nl.Execute(netlink.Message{
		Header: netlink.Header{Type: netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | msgType), Flags: flags},
		Data:   append([]byte{family, unix.NFNETLINK_V0, 0, 0}, data...),
	})
	if err != nil {
		return nil, err
	}
	if !dump && len(msgs) != 1 {
		return nil, fmt.Errorf("the kernel answered %d messages", len(msgs))
	}
	var out []map[uint16][]byte
	for _, m := range msgs {
		if len(m.Data) < 4 {
			return nil, fmt.Errorf("the kernel answered %d bytes", len(m.Data))
		}
		attrs, err := netlink.UnmarshalAttributes(m.Data[4:])
		if err != nil {
			return nil, err
		}
		o := map[uint16][]byte{}
		for _, a := range attrs {
			o[a.Type&^(unix.NLA_F_NESTED|unix.NLA_F_NET_BYTEORDER)] = a.Data
		}
		out = append(out, o)
	}
	return out, nil
}

// u64 and u32 read a big-endian attribute; 0 when it is not one.
func u64(b []byte) uint64 {
	if len(b) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(b)
}

func u32(b []byte) uint32 {
	if len(b) != 4 {
		return 0
	}
	return binary.BigEndian.Uint32(b)
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
