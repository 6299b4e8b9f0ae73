package render

import (
	"fmt"
	"hash/fnv"
	"slices"
	"sync"
)

// rangeBits is the width of a service or local chain's range in the
// endpoints map: the chain's base is its bucket shifted left by it, so a
// chain holds at most 1<<rangeBits endpoints and a table at most
// 1<<(32-rangeBits) such chains.
const rangeBits = 16

// MaxEndpointsPerChain is how many endpoints one service or local chain
// can pick among: the size of its range of the endpoints map.
const MaxEndpointsPerChain = 1 << rangeBits

// slots are the numbers the shared endpoints map and affinity set are
// keyed by, for one family's table: a service or local chain's range base
// (its elements are base, base+1, …, base+N-1) and an endpoint's affinity
// slot (the first half of its clients' key in the affinity set).
//
// Both are derived from names, not from positions, so that a change to
// one service leaves every other service's numbers alone: the plan of a
// one-service change rewrites that service's rule and elements only, and a
// client keeps its affinity to an endpoint while other endpoints of its
// service come and go (the affinity key names the endpoint, not its index
// among the endpoints of the moment).
//
// A collision is resolved by probing upwards from the name's own number,
// names taken in name order (linear probing). A name's number therefore
// depends on the names before it in the run of consecutive taken numbers
// its own number falls in, and on nothing else: adding or removing one
// name moves at most the names after it in that run (the cascade). Runs
// are short because the spaces are sparse: 65,536 buckets for the range
// bases (at internal/bench's 10,000 service ports, load 0.15, the longest
// run is a handful of buckets; TestSlotRuns measures it) and 2^32 affinity
// slots, where a collision at all is rare.
type slots struct {
	base     map[string]uint32 // service or local chain → range base
	affinity map[string]uint32 // endpoint chain name → affinity slot
}

// nameHash is FNV-1a of name: stable across builds and platforms, which
// the numbers in a live table rely on.
func nameHash(name string) uint32 {
	h := fnv.New32a()
	h.Write([]byte(name))
	return h.Sum32()
}

// allocate gives every name a distinct number in 1..size-1 (size a power
// of two up to 1<<32) starting from nameHash(name) mod size and probing
// upwards, names taken in name order. It fails with more names than
// numbers.
//
// Never 0: nft lists "numgen random mod 3 offset 0" as "numgen random
// mod 3", so a rule written with a zero base or slot would never read
// back as written (apply's verification would roll it back); a name
// whose number would be 0 probes on to 1.
func allocate(names []string, size uint64) (map[string]uint32, error) {
	sorted := slices.Clone(names)
	slices.Sort(sorted)
	sorted = slices.Compact(sorted)
	if uint64(len(sorted)) > size-1 {
		return nil, fmt.Errorf("%d names for %d slots", len(sorted), size-1)
	}
	taken := make(map[uint32]bool, len(sorted)+1)
	taken[0] = true
	out := make(map[string]uint32, len(sorted))
	for _, n := range sorted {
		s := uint64(nameHash(n)) % size
		for taken[uint32(s)] {
			s = (s + 1) % size
		}
		taken[uint32(s)] = true
		out[n] = uint32(s)
	}
	return out, nil
}

// newSlots numbers the range of each chain in chains and the affinity slot
// of each endpoint chain name in endpoints.
func newSlots(chains, endpoints []string) (*slots, error) {
	buckets, err := allocate(chains, 1<<(32-rangeBits))
	if err != nil {
		return nil, fmt.Errorf("service and local chains: %w", err)
	}
	for n, b := range buckets {
		buckets[n] = b << rangeBits
	}
	aff, err := allocate(endpoints, 1<<32)
	if err != nil {
		return nil, fmt.Errorf("endpoints under ClientIP affinity: %w", err)
	}
	return &slots{base: buckets, affinity: aff}, nil
}

// slotsCache keeps the last few numberings of incremental renders
// (Options.Others set): reconcile's session renders the changed services
// twice per verdict, old and new, numbered among the same names of every
// other service, and sorting and hashing those names again cost each
// render 5 ms at 10,000 services. A numbering is reused only for exactly
// the same names.
var slotsCache struct {
	sync.Mutex
	entries []*slotsEntry // most recent first
	stamp   uint64
}

// slotsCacheSize bounds the numberings kept: an old and a new render, of
// two services in turn.
const slotsCacheSize = 4

type slotsEntry struct {
	chains, endpoints map[string]uint64 // each name → the stamp of the last comparison that saw it
	sl                *slots
}

// sameNames reports whether names are exactly the keys of set (each name
// counted once), marking them with stamp.
func sameNames(set map[string]uint64, names []string, stamp uint64) bool {
	n := 0
	for _, name := range names {
		seen, ok := set[name]
		if !ok {
			return false
		}
		if seen != stamp {
			set[name] = stamp
			n++
		}
	}
	return n == len(set)
}

// cachedSlots numbers chains and endpoints as newSlots does, reusing a
// numbering of the very same names.
func cachedSlots(chains, endpoints []string) (*slots, error) {
	c := &slotsCache
	c.Lock()
	defer c.Unlock()
	for i, e := range c.entries {
		c.stamp++
		if !sameNames(e.chains, chains, c.stamp) {
			continue
		}
		c.stamp++
		if !sameNames(e.endpoints, endpoints, c.stamp) {
			continue
		}
		copy(c.entries[1:i+1], c.entries[:i])
		c.entries[0] = e
		return e.sl, nil
	}
	sl, err := newSlots(chains, endpoints)
	if err != nil {
		return nil, err
	}
	e := &slotsEntry{chains: make(map[string]uint64, len(chains)), endpoints: make(map[string]uint64, len(endpoints)), sl: sl}
	for _, n := range chains {
		e.chains[n] = 0
	}
	for _, n := range endpoints {
		e.endpoints[n] = 0
	}
	c.entries = append([]*slotsEntry{e}, c.entries[:min(len(c.entries), slotsCacheSize-1)]...)
	return sl, nil
}
