package nftables

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/svcnat/svcnat/internal/kernel/backend"
	"github.com/svcnat/svcnat/internal/kernel/netns"
	"github.com/svcnat/svcnat/internal/kernel/nftables/render"
)

// Reading a chain's rules over netlink.
//
// nft 1.0.6 reads the whole table into its cache before it lists one
// chain: "nft list chain" of one service chain took 1 to 1.5 s at 10,000
// services and 10 s at 30,000, which a health verdict on a service with
// a chain of its own (a node port, an external IP, affinity) paid to
// verify the one rule it rewrote. Over netlink the kernel gives that
// chain's rules alone, in a few milliseconds, as expressions: nlChain
// reads them back into svcnat's words for the few rule shapes svcnat
// writes into service, local and dispatch chains (the endpoint pick, the
// three affinity rules, the dispatch rule), as knftables writes them and
// then as nft lists them (render.AsListed, which TestKernelAgrees holds
// to the kernel). Every attribute of every expression is checked; a rule
// of any other shape, with anything more or other than the shape has, a
// base chain, a rule with user data (a comment), or a ruleset that
// changed during the read leaves the chain to nft's listing, whatever
// the cost. TestNetlinkChainsAgreeWithListing holds the two reads equal
// on every render golden.

// nlExpr is one expression of a rule as the kernel gives it: its name
// and its attributes by type, each once.
type nlExpr struct {
	name  string
	attrs map[uint16][]byte
}

// parseExprs reads a rule's NFTA_RULE_EXPRESSIONS; false for anything
// but a list of named expressions whose attributes are each given once.
func parseExprs(b []byte) ([]nlExpr, bool) {
	ad, err := netlink.NewAttributeDecoder(b)
	if err != nil {
		return nil, false
	}
	var out []nlExpr
	for ad.Next() {
		if ad.Type()&^unix.NLA_F_NESTED != unix.NFTA_LIST_ELEM {
			return nil, false
		}
		ed, err := netlink.NewAttributeDecoder(ad.Bytes())
		if err != nil {
			return nil, false
		}
		var e nlExpr
		seen := 0
		for ed.Next() {
			switch ed.Type() &^ unix.NLA_F_NESTED {
			case unix.NFTA_EXPR_NAME:
				e.name = strings.TrimSuffix(string(ed.Bytes()), "\x00")
			case unix.NFTA_EXPR_DATA:
				if e.attrs, err = attrsOnce(ed.Bytes()); err != nil {
					return nil, false
				}
			default:
				return nil, false
			}
			seen++
		}
		if ed.Err() != nil || seen != 2 || e.name == "" || e.attrs == nil {
			return nil, false
		}
		out = append(out, e)
	}
	return out, ad.Err() == nil
}

// attrsOnce reads attributes by type, refusing one given twice.
func attrsOnce(b []byte) (map[uint16][]byte, error) {
	ad, err := netlink.NewAttributeDecoder(b)
	if err != nil {
		return nil, err
	}
	out := map[uint16][]byte{}
	for ad.Next() {
		t := ad.Type() &^ unix.NLA_F_NESTED
		if _, dup := out[t]; dup {
			return nil, fmt.Errorf("attribute %d twice", t)
		}
		out[t] = ad.Bytes()
	}
	return out, ad.Err()
}

// has reports whether e is the expression name with exactly the
// attributes types.
func (e nlExpr) has(name string, types ...uint16) bool {
	if e.name != name || len(e.attrs) != len(types) {
		return false
	}
	for _, t := range types {
		if _, ok := e.attrs[t]; !ok {
			return false
		}
	}
	return true
}

// u32 is attribute t as a big-endian 32-bit number, ok only for 4 bytes.
func (e nlExpr) u32(t uint16) (uint32, bool) {
	b := e.attrs[t]
	if len(b) != 4 {
		return 0, false
	}
	return binary.BigEndian.Uint32(b), true
}

// is reports whether attribute t is the 32-bit number want.
func (e nlExpr) is(t uint16, want uint32) bool {
	v, ok := e.u32(t)
	return ok && v == want
}

// str is attribute t as a NUL-terminated string.
func (e nlExpr) str(t uint16) (string, bool) {
	s, ok := strings.CutSuffix(string(e.attrs[t]), "\x00")
	return s, ok && s != "" && !strings.ContainsRune(s, 0)
}

// value is attribute t holding exactly one NFTA_DATA_VALUE, its bytes.
func (e nlExpr) value(t uint16) ([]byte, bool) {
	a, err := attrsOnce(e.attrs[t])
	if err != nil || len(a) != 1 {
		return nil, false
	}
	v, ok := a[unix.NFTA_DATA_VALUE]
	return v, ok
}

// Registers as the kernel gives them back (nft_dump_register): a
// 128-bit register by its number (NFT_REG_1 = 1, …), another 32-bit one
// as NFT_REG32_00 (8) + its index.
const (
	reg1   = unix.NFT_REG_1
	reg2   = unix.NFT_REG_2
	reg32x = unix.NFT_REG32_00
)

// famRegs are the things of a family the shapes depend on: its NFPROTO,
// "ip" or "ip6", its addresses' length and offsets in the network
// header, and the registers nft puts a value after an address in.
type famRegs struct {
	proto          uint32
	ipX            string
	addrLen        uint32
	saddr, daddr   uint32
	afterAddr      uint32 // the register after an address in reg 1
	afterAddrThen  uint32 // the one after that (after 4 more bytes)
	pickProtoReg   uint32 // the endpoint pick's port register (after the address the map gives)
	affinityClient uint32 // the client address after the slot in the affinity key
}

func regsOf(fam backend.Family) famRegs {
	if fam == backend.IPv6 {
		return famRegs{unix.NFPROTO_IPV6, "ip6", 16, 8, 24, reg2, reg32x + 5, reg2, reg32x + 1}
	}
	return famRegs{unix.NFPROTO_IPV4, "ip", 4, 12, 16, reg32x + 1, reg32x + 2, reg32x + 1, reg32x + 1}
}

// ruleDecoder reads one rule's expressions in order.
type ruleDecoder struct {
	f  famRegs
	ex []nlExpr
	i  int
}

func (d *ruleDecoder) next() (nlExpr, bool) {
	if d.i >= len(d.ex) {
		return nlExpr{}, false
	}
	d.i++
	return d.ex[d.i-1], true
}

// l4proto reads "meta l4proto P" (meta load into reg 1, cmp eq): P.
func (d *ruleDecoder) l4proto() (string, bool) {
	m, ok1 := d.next()
	c, ok2 := d.next()
	if !ok1 || !ok2 || !m.has("meta", unix.NFTA_META_DREG, unix.NFTA_META_KEY) ||
		!m.is(unix.NFTA_META_DREG, reg1) || !m.is(unix.NFTA_META_KEY, unix.NFT_META_L4PROTO) {
		return "", false
	}
	v, ok := d.cmpEq(c, reg1)
	if !ok || len(v) != 1 {
		return "", false
	}
	switch p := v[0]; p {
	case unix.IPPROTO_TCP, unix.IPPROTO_UDP, unix.IPPROTO_SCTP:
		return protocolName(p)
	}
	return "", false
}

// cmpEq reads a comparison for equality of register sreg: the value.
func (d *ruleDecoder) cmpEq(c nlExpr, sreg uint32) ([]byte, bool) {
	if !c.has("cmp", unix.NFTA_CMP_SREG, unix.NFTA_CMP_OP, unix.NFTA_CMP_DATA) ||
		!c.is(unix.NFTA_CMP_SREG, sreg) || !c.is(unix.NFTA_CMP_OP, unix.NFT_CMP_EQ) {
		return nil, false
	}
	return c.value(unix.NFTA_CMP_DATA)
}

// numgen reads "numgen random mod N offset K" into dreg, as nft prints
// it (no offset when 0).
func (d *ruleDecoder) numgen(dreg uint32) (text string, mod uint32, ok bool) {
	n, ok := d.next()
	if !ok || !n.has("numgen", unix.NFTA_NG_DREG, unix.NFTA_NG_MODULUS, unix.NFTA_NG_TYPE, unix.NFTA_NG_OFFSET) ||
		!n.is(unix.NFTA_NG_DREG, dreg) || !n.is(unix.NFTA_NG_TYPE, unix.NFT_NG_RANDOM) {
		return "", 0, false
	}
	mod, ok1 := n.u32(unix.NFTA_NG_MODULUS)
	off, ok2 := n.u32(unix.NFTA_NG_OFFSET)
	if !ok1 || !ok2 || mod == 0 {
		return "", 0, false
	}
	text = "numgen random mod " + strconv.FormatUint(uint64(mod), 10)
	if off != 0 {
		text += " offset " + strconv.FormatUint(uint64(off), 10)
	}
	return text, mod, true
}

// payload reads a load of n bytes at offset off of base into dreg.
func (d *ruleDecoder) payload(base, off, n, dreg uint32) bool {
	p, ok := d.next()
	return ok && p.has("payload", unix.NFTA_PAYLOAD_DREG, unix.NFTA_PAYLOAD_BASE, unix.NFTA_PAYLOAD_OFFSET, unix.NFTA_PAYLOAD_LEN) &&
		p.is(unix.NFTA_PAYLOAD_DREG, dreg) && p.is(unix.NFTA_PAYLOAD_BASE, base) &&
		p.is(unix.NFTA_PAYLOAD_OFFSET, off) && p.is(unix.NFTA_PAYLOAD_LEN, n)
}

// lookup reads a lookup of reg 1 in a named set (map: into dreg 1): the
// set's name.
func (d *ruleDecoder) lookup(isMap bool) (string, bool) {
	l, ok := d.next()
	if !ok {
		return "", false
	}
	types := []uint16{unix.NFTA_LOOKUP_SET, unix.NFTA_LOOKUP_SREG, unix.NFTA_LOOKUP_FLAGS}
	if isMap {
		types = append(types, unix.NFTA_LOOKUP_DREG)
	}
	if !l.has("lookup", types...) || !l.is(unix.NFTA_LOOKUP_SREG, reg1) || !l.is(unix.NFTA_LOOKUP_FLAGS, 0) ||
		isMap && !l.is(unix.NFTA_LOOKUP_DREG, reg1) {
		return "", false
	}
	name, ok := l.str(unix.NFTA_LOOKUP_SET)
	return name, ok && plainChain(name)
}

// dnat reads a DNAT of this family to the address in reg 1 and the port
// in portReg.
func (d *ruleDecoder) dnat(portReg uint32) bool {
	n, ok := d.next()
	return ok && n.has("nat", unix.NFTA_NAT_TYPE, unix.NFTA_NAT_FAMILY, unix.NFTA_NAT_REG_ADDR_MIN, unix.NFTA_NAT_REG_ADDR_MAX,
		unix.NFTA_NAT_REG_PROTO_MIN, unix.NFTA_NAT_REG_PROTO_MAX, unix.NFTA_NAT_FLAGS) &&
		n.is(unix.NFTA_NAT_TYPE, unix.NFT_NAT_DNAT) && n.is(unix.NFTA_NAT_FAMILY, d.f.proto) &&
		n.is(unix.NFTA_NAT_REG_ADDR_MIN, reg1) && n.is(unix.NFTA_NAT_REG_ADDR_MAX, reg1) &&
		n.is(unix.NFTA_NAT_REG_PROTO_MIN, portReg) && n.is(unix.NFTA_NAT_REG_PROTO_MAX, portReg) &&
		n.is(unix.NFTA_NAT_FLAGS, unix.NF_NAT_RANGE_MAP_IPS|unix.NF_NAT_RANGE_PROTO_SPECIFIED)
}

// immediate reads a constant loaded into dreg.
func (d *ruleDecoder) immediate(dreg uint32) ([]byte, bool) {
	i, ok := d.next()
	if !ok || !i.has("immediate", unix.NFTA_IMMEDIATE_DREG, unix.NFTA_IMMEDIATE_DATA) || !i.is(unix.NFTA_IMMEDIATE_DREG, dreg) {
		return nil, false
	}
	return i.value(unix.NFTA_IMMEDIATE_DATA)
}

// affinityKey reads the affinity key "numgen random mod 1 offset SLOT .
// ip saddr" into reg 1 and on.
func (d *ruleDecoder) affinityKey() (string, bool) {
	ng, mod, ok := d.numgen(reg1)
	if !ok || mod != 1 || !d.payload(unix.NFT_PAYLOAD_NETWORK_HEADER, d.f.saddr, d.f.addrLen, d.f.affinityClient) {
		return "", false
	}
	return ng + " . " + d.f.ipX + " saddr", true
}

// update reads "update @SET { KEY timeout T } meta l4proto P dnat to
// ADDR:PORT", the end of every affinity rule, as knftables writes it.
func (d *ruleDecoder) update() (string, bool) {
	key, ok := d.affinityKey()
	if !ok {
		return "", false
	}
	u, ok := d.next()
	if !ok || !u.has("dynset", unix.NFTA_DYNSET_SREG_KEY, unix.NFTA_DYNSET_OP, unix.NFTA_DYNSET_SET_NAME, unix.NFTA_DYNSET_TIMEOUT, unix.NFTA_DYNSET_FLAGS) ||
		!u.is(unix.NFTA_DYNSET_SREG_KEY, reg1) || !u.is(unix.NFTA_DYNSET_OP, unix.NFT_DYNSET_OP_UPDATE) || !u.is(unix.NFTA_DYNSET_FLAGS, 0) {
		return "", false
	}
	set, ok := u.str(unix.NFTA_DYNSET_SET_NAME)
	ms := u.attrs[unix.NFTA_DYNSET_TIMEOUT]
	if !ok || !plainChain(set) || len(ms) != 8 {
		return "", false
	}
	t := binary.BigEndian.Uint64(ms)
	if t == 0 || t%1000 != 0 {
		return "", false
	}
	proto, ok := d.l4proto()
	if !ok {
		return "", false
	}
	a, ok1 := d.immediate(reg1)
	p, ok2 := d.immediate(reg2)
	addr, ok3 := netip.AddrFromSlice(a)
	if !ok1 || !ok2 || !ok3 || len(a) != int(d.f.addrLen) || len(p) != 2 || !d.dnat(reg2) {
		return "", false
	}
	addr = addr.Unmap()
	if len(a) == 16 && addr.Is4() {
		return "", false // an IPv4-mapped IPv6 address: nft's words are its own
	}
	to := netip.AddrPortFrom(addr, binary.BigEndian.Uint16(p)).String()
	return "update @" + set + " { " + key + " timeout " + strconv.FormatUint(t/1000, 10) + "s } meta l4proto " + proto + " dnat to " + to, true
}

// ruleText is the rule exprs say as svcnat writes it, for the shapes of
// service, local and dispatch chains; false for anything else.
func ruleText(f famRegs, exprs []nlExpr) (string, bool) {
	d := &ruleDecoder{f: f, ex: exprs}
	var text string
	var ok bool
	switch first := exprs[0].name; {
	case first == "meta" && len(exprs) == 5:
		// meta l4proto P dnat ip addr . port to numgen random mod N offset K map @M
		var proto, ng, m string
		if proto, ok = d.l4proto(); ok {
			if ng, _, ok = d.numgen(reg1); ok {
				if m, ok = d.lookup(true); ok {
					ok = d.dnat(f.pickProtoReg)
					text = "meta l4proto " + proto + " dnat " + f.ipX + " addr . port to " + ng + " map @" + m
				}
			}
		}
	case first == "meta" && len(exprs) == 7:
		// dnat ip addr . port to ip daddr . P dport . numgen random mod N map @M
		var proto, ng, m string
		var mod uint32
		if proto, ok = d.l4proto(); ok && d.payload(unix.NFT_PAYLOAD_NETWORK_HEADER, f.daddr, f.addrLen, reg1) &&
			d.payload(unix.NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2, f.afterAddr) {
			if ng, mod, ok = d.numgen(f.afterAddrThen); ok && !strings.Contains(ng, "offset") && mod > 0 {
				if m, ok = d.lookup(true); ok {
					ok = d.dnat(f.afterAddr)
					text = "dnat " + f.ipX + " addr . port to " + f.ipX + " daddr . " + proto + " dport . " + ng + " map @" + m
				}
			}
		} else {
			ok = false
		}
	case first == "numgen" && len(exprs) == 11:
		// KEY @SET update @SET { KEY timeout T } meta l4proto P dnat to A:P
		var key, set, rest string
		if key, ok = d.affinityKey(); ok {
			if set, ok = d.lookup(false); ok {
				rest, ok = d.update()
				text = key + " @" + set + " " + rest
			}
		}
	case first == "numgen" && len(exprs) == 10:
		// numgen random mod N 0 update @SET { … } …
		var ng, rest string
		var mod uint32
		if ng, mod, ok = d.numgen(reg1); ok && !strings.Contains(ng, "offset") && mod > 1 {
			c, _ := d.next()
			var v []byte
			if v, ok = d.cmpEq(c, reg1); ok && len(v) == 4 && binary.NativeEndian.Uint32(v) == 0 {
				rest, ok = d.update()
				text = ng + " 0 " + rest
			} else {
				ok = false
			}
		} else {
			ok = false
		}
	case first == "numgen" && len(exprs) == 8:
		text, ok = d.update()
	}
	if !ok || d.i != len(exprs) {
		return "", false
	}
	return render.AsListed(text), true
}

// nlChain reads chain name of fam's table over netlink: its rules as
// nft lists them, and whether it exists. ok is false when the chain
// must be left to nft's listing (see above).
func (r *Runner) nlChain(fam backend.Family, table, name string) (rules []backend.Rule, exists, ok bool, err error) {
	f := regsOf(fam)
	err = netns.Do(r.netns, func() error {
		nl, err := netlink.Dial(unix.NETLINK_NETFILTER, nil)
		if err != nil {
			return err
		}
		defer nl.Close()
		before, err := generation(nl)
		if err != nil {
			return err
		}
		tableAttr := netlink.Attribute{Type: unix.NFTA_CHAIN_TABLE, Data: []byte(table + "\x00")}
		ca, err := objects(nl, unix.NFT_MSG_GETCHAIN, byte(f.proto), false, tableAttr,
			netlink.Attribute{Type: unix.NFTA_CHAIN_NAME, Data: []byte(name + "\x00")})
		switch {
		case errors.Is(err, unix.ENOENT):
			// no such chain (or table), unless the ruleset changed
			after, err := generation(nl)
			ok = err == nil && after == before
			return err
		case err != nil:
			return fmt.Errorf("chain %s: %w", name, err)
		}
		if len(ca) != 1 || ca[0][unix.NFTA_CHAIN_HOOK] != nil {
			return nil // a base chain: nft lists its declaration too
		}
		ra, err := objects(nl, unix.NFT_MSG_GETRULE, byte(f.proto), true,
			netlink.Attribute{Type: unix.NFTA_RULE_TABLE, Data: []byte(table + "\x00")},
			netlink.Attribute{Type: unix.NFTA_RULE_CHAIN, Data: []byte(name + "\x00")})
		if err != nil {
			return fmt.Errorf("the rules of %s: %w", name, err)
		}
		for _, a := range ra {
			if c, _ := strings.CutSuffix(string(a[unix.NFTA_RULE_CHAIN]), "\x00"); c != name || a[unix.NFTA_RULE_USERDATA] != nil {
				return nil
			}
			exprs, good := parseExprs(a[unix.NFTA_RULE_EXPRESSIONS])
			if !good || len(exprs) == 0 {
				return nil
			}
			text, good := ruleText(f, exprs)
			if !good {
				return nil
			}
			rules = append(rules, backend.NFTRuleOf(name, text))
		}
		after, err := generation(nl)
		if err != nil {
			return err
		}
		exists, ok = true, after == before
		return nil
	})
	if err != nil || !ok {
		return nil, false, false, err
	}
	return rules, exists, true, nil
}
