package nftables

import (
	"encoding/binary"
	"testing"

	gnft "github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// verdictBytes is a verdict as google/nftables hands a map's data over.
func verdictBytes(t *testing.T, kind expr.VerdictKind, chain string) []byte {
	t.Helper()
	code := make([]byte, 4)
	binary.BigEndian.PutUint32(code, uint32(int32(kind)))
	attrs := []netlink.Attribute{{Type: unix.NFTA_VERDICT_CODE, Data: code}}
	if chain != "" {
		attrs = append(attrs, netlink.Attribute{Type: unix.NFTA_VERDICT_CHAIN, Data: []byte(chain + "\x00")})
	}
	b, err := netlink.MarshalAttributes(attrs)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func numgen(n uint32) []byte { return binary.NativeEndian.AppendUint32(nil, n) }

// TestElementDecoder: the forms svcnat's tables hold decode to nft's
// text (TestNetlinkReadAgreesWithListing checks them against nft itself);
// what the decoder cannot be sure of is refused, never guessed.
func TestElementDecoder(t *testing.T) {
	if _, ok := protocolName(unix.IPPROTO_UDP); !ok {
		t.Skip("no /etc/protocols: nft would print protocols as numbers")
	}
	const vmap = `type ipv4_addr . inet_proto . inet_service : verdict ; comment "ClusterIP" ;`
	const vip = `typeof ip daddr . tcp dport . numgen random mod 1 : ip daddr . tcp dport ;`
	tcp80 := []byte{10, 96, 0, 1, unix.IPPROTO_TCP, 0, 0, 0, 0, 80, 0, 0}
	for _, c := range []struct {
		name, decl string
		elem       gnft.SetElement
		want       string // "" for refused
	}{
		{"vmap goto", vmap, gnft.SetElement{Key: tcp80, Val: verdictBytes(t, expr.VerdictGoto, "service-X-ns/a/tcp/p80")}, "10.96.0.1 . tcp . 80 : goto service-X-ns/a/tcp/p80"},
		{"vmap comment", vmap, gnft.SetElement{Key: tcp80, Comment: "ns/a:http", Val: verdictBytes(t, expr.VerdictDrop, "")}, `10.96.0.1 . tcp . 80 comment "ns/a:http" : drop`},
		{"vmap jump", vmap, gnft.SetElement{Key: tcp80, Val: verdictBytes(t, expr.VerdictJump, "c")}, "10.96.0.1 . tcp . 80 : jump c"},
		{"vmap accept", vmap, gnft.SetElement{Key: tcp80, Val: verdictBytes(t, expr.VerdictAccept, "")}, "10.96.0.1 . tcp . 80 : accept"},
		{"vmap return", vmap, gnft.SetElement{Key: tcp80, Val: verdictBytes(t, expr.VerdictReturn, "")}, ""},
		{"a chain nft may quote", vmap, gnft.SetElement{Key: tcp80, Val: verdictBytes(t, expr.VerdictGoto, "a b")}, ""},
		{"a comment with a quote", vmap, gnft.SetElement{Key: tcp80, Comment: `a"b`, Val: verdictBytes(t, expr.VerdictDrop, "")}, ""},
		{"padding not zero", vmap, gnft.SetElement{Key: []byte{10, 96, 0, 1, 6, 1, 0, 0, 0, 80, 0, 0}, Val: verdictBytes(t, expr.VerdictDrop, "")}, ""},
		{"key too short", vmap, gnft.SetElement{Key: tcp80[:8], Val: verdictBytes(t, expr.VerdictDrop, "")}, ""},
		{"protocol without a name here", vmap, gnft.SetElement{Key: []byte{10, 96, 0, 1, 47, 0, 0, 0, 0, 80, 0, 0}, Val: verdictBytes(t, expr.VerdictDrop, "")}, ""},
		{"a timeout", vmap, gnft.SetElement{Key: tcp80, Timeout: 1, Val: verdictBytes(t, expr.VerdictDrop, "")}, ""},
		{"vip endpoints", vip, gnft.SetElement{Key: append([]byte{10, 96, 2, 0, 0, 80, 0, 0}, numgen(3)...), Val: []byte{10, 64, 10, 0, 0x1f, 0x90, 0, 0}}, "10.96.2.0 . 80 . 3 : 10.64.10.0 . 8080"},
		{"endpoints", `typeof numgen random mod 1 : ip6 daddr . udp dport ;`, gnft.SetElement{Key: numgen(751894528), Val: append([]byte{0xfd, 0, 0, 0x10, 15: 0x61}, 0, 53, 0, 0)}, "751894528 : fd00:10::61 . 53"},
		{"an IPv4-mapped address", `type ipv6_addr ;`, gnft.SetElement{Key: []byte{10: 0xff, 11: 0xff, 12: 1, 13: 2, 14: 3, 15: 4}}, ""},
		{"hairpin", `type ipv4_addr . ipv4_addr . inet_proto . inet_service ;`, gnft.SetElement{Key: []byte{1, 2, 3, 4, 1, 2, 3, 4, 17, 0, 0, 0, 0, 53, 0, 0}}, "1.2.3.4 . 1.2.3.4 . udp . 53"},
		{"a set given data", `type ipv4_addr ;`, gnft.SetElement{Key: []byte{1, 2, 3, 4}, Val: []byte{1}}, ""},
		{"one field, not padded", `type inet_service ;`, gnft.SetElement{Key: []byte{0, 80}}, "80"},
		{"an unknown type", `type mark ;`, gnft.SetElement{Key: numgen(1)}, ""},
		{"numgen by type", `type integer ;`, gnft.SetElement{Key: numgen(1)}, ""},
		{"a size", `type ipv4_addr ; size 10 ;`, gnft.SetElement{Key: []byte{1, 2, 3, 4}}, ""},
		{"flags", `type ipv4_addr ; flags interval ;`, gnft.SetElement{Key: []byte{1, 2, 3, 4}}, ""},
	} {
		got, ok := "", false
		if d, known := newElementDecoder(c.decl); known {
			got, ok = d.text(c.elem)
		}
		if ok != (c.want != "") || got != c.want {
			t.Errorf("%s: %q %v, want %q", c.name, got, ok, c.want)
		}
		// What decodes encodes back to the same bytes (element, for the
		// cold start's netlink writes).
		if c.want == "" {
			continue
		}
		d, _ := newElementDecoder(c.decl)
		e, ok := d.element(c.want)
		val := e.Val
		if e.VerdictData != nil {
			val = verdictBytes(t, e.VerdictData.Kind, e.VerdictData.Chain)
		}
		if !ok || string(e.Key) != string(c.elem.Key) || string(val) != string(c.elem.Val) || e.Comment != c.elem.Comment {
			t.Errorf("%s: element(%q) = %+v %v, want %+v", c.name, c.want, e, ok, c.elem)
		}
	}
}

// TestElementEncoderRefuses: text the decoder would not give back as it
// is, or a form it does not know, is not encoded (the cold start then
// leaves the elements to nft).
func TestElementEncoderRefuses(t *testing.T) {
	if _, ok := protocolName(unix.IPPROTO_UDP); !ok {
		t.Skip("no /etc/protocols")
	}
	const vmap = `type ipv4_addr . inet_proto . inet_service : verdict ;`
	for _, c := range []struct{ decl, text string }{
		{vmap, "10.96.0.1 . tcp . 80 : return"},
		{vmap, "10.96.0.1 . tcp . 80 : goto a b"},
		{vmap, "10.96.0.1 . tcp . 80"},
		{vmap, "10.96.0.1 . tcp : drop"},
		{vmap, "10.96.0.01 . tcp . 80 : drop"},
		{vmap, "10.96.0.1 . tcp . 080 : drop"},
		{vmap, "10.96.0.1 . gre . 80 : drop"},
		{vmap, "fd00::1 . tcp . 80 : drop"},
		{vmap, `10.96.0.1 . tcp . 80 comment "a"b" : drop`},
		{`type ipv4_addr ;`, "10.96.0.1 : drop"},
		{`type ipv6_addr ;`, "::ffff:1.2.3.4"},
		{`typeof numgen random mod 1 : ip daddr . tcp dport ;`, "4294967296 : 10.0.0.1 . 80"},
	} {
		d, known := newElementDecoder(c.decl)
		if !known {
			t.Fatalf("%s: not known", c.decl)
		}
		if e, ok := d.element(c.text); ok {
			t.Errorf("%s: element(%q) = %+v, want refused", c.decl, c.text, e)
		}
	}
}
