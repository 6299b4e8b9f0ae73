package render

import (
	"maps"
	"slices"
	"strconv"
	"testing"

	"github.com/svcnat/svcnat/internal/bench"
	"github.com/svcnat/svcnat/internal/config"
	"github.com/svcnat/svcnat/internal/kernel/backend"
	"github.com/svcnat/svcnat/internal/service"
)

// TestAllocate: numbers are distinct, start at the name's hash, do not
// depend on the order names come in, a collision probes upwards
// (wrapping) in name order, and 0 is never given.
func TestAllocate(t *testing.T) {
	names := []string{"a", "b", "c", "d", "e", "f", "g"}
	got, err := allocate(append(names, "h"), 8)
	if err == nil {
		t.Fatalf("8 names in the 7 slots 1..7: %v", got)
	}
	got, err = allocate(names, 8)
	if err != nil {
		t.Fatal(err)
	}
	rev := slices.Clone(names)
	slices.Reverse(rev)
	again, _ := allocate(rev, 8)
	if !maps.Equal(got, again) {
		t.Errorf("the order of the names matters: %v and %v", got, again)
	}
	seen := map[uint32]string{}
	taken := map[uint32]bool{0: true}
	for _, n := range names { // in name order
		s := got[n]
		if other, ok := seen[s]; ok {
			t.Errorf("%s and %s share %d", n, other, s)
		}
		seen[s] = n
		// The first free number from the hash, upwards.
		want := nameHash(n) % 8
		for taken[want] {
			want = (want + 1) % 8
		}
		taken[want] = true
		if s != want {
			t.Errorf("%s: %d, want %d", n, s, want)
		}
	}
}

// TestSlotRuns measures, on internal/bench's 10,000 services × 5
// endpoints (one in seven under ClientIP affinity), how far a change can
// move other chains' ranges: a name's bucket depends only on the names
// before it in its run of consecutive taken buckets, so the longest run
// bounds the cascade. Adding one service port must leave every range but
// those in its run where they were, and every affinity slot.
func TestSlotRuns(t *testing.T) {
	if testing.Short() {
		t.Skip("renders 10,000 services")
	}
	slotsOf := func(n int) (*slots, []string) {
		srcs := map[string][]byte{}
		for name, body := range bench.Files(bench.Spec{Services: n, Endpoints: 5}) {
			srcs[name] = []byte(body)
		}
		cfg, diags := config.Parse(srcs)
		if diags.HasErrors() {
			t.Fatal(diags)
		}
		b := newBuilder(backend.IPv4, &cfg.Settings, Options{Table: DefaultTable})
		_, sl, err := b.servicePorts(service.Build(cfg, service.Options{Node: bench.Node}), map[string]*backend.Shares{})
		if err != nil {
			t.Fatal(err)
		}
		return sl, slices.Sorted(maps.Keys(sl.base))
	}
	sl, chains := slotsOf(10000)
	if len(sl.affinity) == 0 {
		t.Fatal("no endpoint under affinity in the bench configuration")
	}
	buckets := map[uint32]bool{}
	for _, b := range sl.base {
		buckets[b>>rangeBits] = true
	}
	longest, run := 0, 0
	for b := 0; b <= 1<<(32-rangeBits); b++ {
		if b < 1<<(32-rangeBits) && buckets[uint32(b)] {
			run++
			continue
		}
		longest, run = max(longest, run), 0
	}
	moved := 0
	for _, c := range chains {
		if sl.base[c]>>rangeBits != nameHash(c)%(1<<(32-rangeBits)) {
			moved++
		}
	}
	t.Logf("%d chains in %d buckets: %d not in their own bucket, longest run %d", len(chains), 1<<(32-rangeBits), moved, longest)
	if longest > 16 {
		t.Errorf("a run of %d buckets", longest)
	}

	// One more service port: only chains of its run may move.
	grown, _ := slotsOf(10001)
	changed := 0
	for _, c := range chains {
		if grown.base[c] != sl.base[c] {
			changed++
		}
	}
	if changed > longest {
		t.Errorf("adding a service moved %d ranges, more than the longest run %d", changed, longest)
	}
	for ep, s := range sl.affinity {
		if grown.affinity[ep] != s {
			t.Errorf("adding a service moved %s's affinity slot", ep)
		}
	}
}

// TestNoZeroBase: a chain whose name hashes to bucket 0 gets bucket 1,
// so its rule never says "offset 0", which nft lists without the offset
// (the rule would never read back as written). The rendered rule and
// its elements agree on the base.
func TestNoZeroBase(t *testing.T) {
	var zero string
	for i := 0; zero == ""; i++ {
		if n := "chain" + strconv.Itoa(i); nameHash(n)%(1<<(32-rangeBits)) == 0 {
			zero = n
		}
	}
	sl, err := newSlots([]string{zero}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := sl.base[zero]; got != 1<<rangeBits {
		t.Fatalf("%s hashes to bucket 0: base %d, want %d", zero, got, 1<<rangeBits)
	}
}

// TestCachedSlots: a numbering is reused only for exactly the same names
// (in any order, a name given twice counted once), and every reuse is
// the numbering newSlots gives.
func TestCachedSlots(t *testing.T) {
	chains := []string{"service-a", "service-b", "local-a", "service-c"}
	eps := []string{"endpoint-1", "endpoint-2"}
	check := func(chains, eps []string) *slots {
		t.Helper()
		got, err := cachedSlots(chains, eps)
		if err != nil {
			t.Fatal(err)
		}
		want, err := newSlots(chains, eps)
		if err != nil {
			t.Fatal(err)
		}
		if !maps.Equal(got.base, want.base) || !maps.Equal(got.affinity, want.affinity) {
			t.Fatalf("cached %v %v, want %v %v", got.base, got.affinity, want.base, want.affinity)
		}
		return got
	}
	first := check(chains, eps)
	rev := slices.Clone(chains)
	slices.Reverse(rev)
	if again := check(append(rev, "service-a"), eps); again != first {
		t.Error("the same names in another order were numbered again")
	}
	if other := check(chains[:3], eps); other == first {
		t.Error("fewer names reused the numbering")
	}
	if other := check(append(slices.Clone(chains[:3]), "service-d"), eps); other == first {
		t.Error("other names reused the numbering")
	}
	if other := check(chains, eps[:1]); other == first {
		t.Error("fewer endpoints reused the numbering")
	}
	if again := check(chains, eps); again != first {
		t.Error("the first names, asked again, were numbered again")
	}
}
