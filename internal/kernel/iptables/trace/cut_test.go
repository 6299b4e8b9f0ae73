package trace

import (
	"bytes"
	"fmt"
	"github.com/svcnat/svcnat/internal/kernel/backend"
	traceview "github.com/svcnat/svcnat/internal/trace"
	"strings"
	"testing"
)

// A jump loop (which the kernel refuses to load, but a hand-edited dump
// can hold) is followed MaxJumpDepth jumps deep, then the path is cut
// there: it claims no verdict, and says where it stopped.
func TestJumpLoopCutsThePath(t *testing.T) {
	h := dumpHost(t, "*filter\n:INPUT DROP [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:LOOP-A - [0:0]\n:LOOP-B - [0:0]\n"+
		"-A INPUT -p tcp --dport 22 -j LOOP-A\n-A INPUT -j ACCEPT\n-A LOOP-A -j LOOP-B\n-A LOOP-B -j LOOP-A\nCOMMIT\n")
	res, err := h.Trace(packet("192.0.2.2", "127.0.0.1", "tcp", 22, backend.OriginExternal))
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := traceview.Write(&b, res); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	if len(res.Paths) != 1 {
		t.Fatalf("%d paths:\n%s", len(res.Paths), out)
	}
	p := res.Paths[0]
	if p.Cut == nil || *p.Cut != (backend.Cut{Chain: "LOOP-A", Depth: MaxJumpDepth}) || p.Verdict != "" || traceview.DecidedBy(p) != "" {
		t.Fatalf("cut %+v, verdict %q, decided by %q:\n%s", p.Cut, p.Verdict, traceview.DecidedBy(p), out)
	}
	if want := "  path cut: jump depth 64 reached at LOOP-A\n"; !strings.Contains(out, want) || strings.Contains(out, "verdict:") {
		t.Fatalf("want %q and no verdict:\n%s", want, out)
	}
	// The packet that does not enter the loop still has its verdict.
	res, err = h.Trace(packet("192.0.2.2", "127.0.0.1", "tcp", 80, backend.OriginExternal))
	if err != nil || len(res.Paths) != 1 || res.Paths[0].Verdict != backend.Accept || res.Paths[0].Cut != nil {
		t.Fatalf("outside the loop: %v %+v", err, res)
	}
}

// MaxJumpDepth jumps are followed to their verdict; one more cuts the
// path at the chain it would enter.
func TestJumpDepthLimit(t *testing.T) {
	nested := func(depth int) Host {
		var b strings.Builder
		b.WriteString("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n")
		for i := 1; i <= depth; i++ {
			fmt.Fprintf(&b, ":C%d - [0:0]\n", i)
		}
		b.WriteString("-A INPUT -j C1\n")
		for i := 1; i < depth; i++ {
			fmt.Fprintf(&b, "-A C%d -j C%d\n", i, i+1)
		}
		fmt.Fprintf(&b, "-A C%d -j DROP\nCOMMIT\n", depth)
		return dumpHost(t, b.String())
	}
	res, err := nested(MaxJumpDepth).Trace(packet("192.0.2.2", "127.0.0.1", "tcp", 80, backend.OriginExternal))
	if err != nil || len(res.Paths) != 1 || res.Paths[0].Verdict != backend.Drop || res.Paths[0].Cut != nil {
		t.Fatalf("%d jumps deep: %v %+v", MaxJumpDepth, err, res)
	}
	res, err = nested(MaxJumpDepth + 1).Trace(packet("192.0.2.2", "127.0.0.1", "tcp", 80, backend.OriginExternal))
	if err != nil || len(res.Paths) != 1 || res.Paths[0].Verdict != "" || res.Paths[0].Cut == nil || res.Paths[0].Cut.Chain != fmt.Sprintf("C%d", MaxJumpDepth+1) {
		t.Fatalf("%d jumps deep: %v %+v", MaxJumpDepth+1, err, res)
	}
}
