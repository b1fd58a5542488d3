package content

import (
	"slices"
	"sort"
)

// substrIndex finds, in one pass over an input, every "contains" anchor
// that occurs in it: an Aho-Corasick automaton over byte classes, so the
// cost per event is the input's length plus the instances found, not the
// number of patterns.
type substrIndex struct {
	fold    bool
	class   [256]uint8
	classes int
	delta   []int32   // state*classes + class -> next state
	out     [][]int32 // instances whose pattern ends exactly at the state
	// dict links a state to the longest proper suffix of it that is a
	// state with instances of its own (0: none), so a match reports every
	// pattern ending there without copying lists into each state.
	dict []int32
	// hit is the state itself if it has instances, else dict: the first
	// state to report, found with one load on the common byte that ends no
	// pattern.
	hit []int32
	// seen stamps the states whose instances this event has pushed (the
	// Evaluator's epoch): an input that revisits a state, such as "aaaa"
	// against the pattern "a", pushes its list once, not once a byte.
	seen []uint32
}

// maxSubstrTable bounds the automaton's transition table (entries); a
// field whose patterns would need more falls back to scanning.
const maxSubstrTable = 1 << 22

type substrPattern struct {
	s    string
	inst int32
}

func buildSubstrIndex(pats []substrPattern, fold bool) *substrIndex {
	x := &substrIndex{fold: fold}
	x.classes = 1 // class 0: bytes that occur in no pattern
	total := 0
	for _, p := range pats {
		total += len(p.s)
		for i := 0; i < len(p.s); i++ {
			if c := p.s[i]; x.class[c] == 0 {
				if x.classes == 255 {
					return nil
				}
				x.class[c] = uint8(x.classes)
				x.classes++
			}
		}
	}
	if fold {
		// Patterns are folded; map upper-case input bytes to the same class.
		for c := 'A'; c <= 'Z'; c++ {
			x.class[c] = x.class[c+'a'-'A']
		}
	}
	if (total+1)*x.classes > maxSubstrTable {
		return nil
	}
	// Trie.
	x.delta = make([]int32, x.classes, (total+1)*x.classes)
	x.out = [][]int32{nil}
	for _, p := range pats {
		s := int32(0)
		for i := 0; i < len(p.s); i++ {
			k := int(s)*x.classes + int(x.class[p.s[i]])
			if x.delta[k] == 0 {
				x.delta = append(x.delta, make([]int32, x.classes)...)
				x.out = append(x.out, nil)
				x.delta[k] = int32(len(x.out) - 1)
			}
			s = x.delta[k]
		}
		if o := x.out[s]; len(o) == 0 || o[len(o)-1] != p.inst {
			x.out[s] = append(o, p.inst)
		}
	}
	// Failure links, breadth first, folded into a full transition table.
	fail := make([]int32, len(x.out))
	x.dict = make([]int32, len(x.out))
	x.hit = make([]int32, len(x.out))
	x.seen = make([]uint32, len(x.out))
	queue := []int32{}
	for c := range x.classes {
		if t := x.delta[c]; t != 0 {
			queue = append(queue, t)
		}
	}
	for len(queue) > 0 {
		s := queue[0]
		queue = queue[1:]
		if f := fail[s]; len(x.out[f]) > 0 {
			x.dict[s] = f
		} else {
			x.dict[s] = x.dict[f]
		}
		x.hit[s] = x.dict[s]
		if len(x.out[s]) > 0 {
			x.hit[s] = s
		}
		for c := range x.classes {
			k := int(s)*x.classes + c
			if t := x.delta[k]; t != 0 {
				fail[t] = x.delta[int(fail[s])*x.classes+c]
				queue = append(queue, t)
			} else {
				x.delta[k] = x.delta[int(fail[s])*x.classes+c]
			}
		}
	}
	return x
}

// scanSubstr pushes every instance whose pattern occurs in s.
func (e *Evaluator) scanSubstr(x *substrIndex, s string) {
	st := int32(0)
	for i := 0; i < len(s); i++ {
		st = x.delta[int(st)*x.classes+int(x.class[s[i]])]
		// A stamped state's dictionary suffixes are stamped too, so the
		// walk stops at the first state already done this event.
		for t := x.hit[st]; t != 0 && x.seen[t] != e.epoch; t = x.dict[t] {
			x.seen[t] = e.epoch
			e.push(x.out[t])
		}
	}
}

// rangeIndex answers "which ranges contain v" for one numeric field: the
// range endpoints cut the number line into segments, each listing the
// instances whose range covers it, found by binary search.
type rangeIndex struct {
	signed bool
	points []uint64 // segment starts, ascending, in unsigned order
	lists  [][]int32
}

// maxRangeEntries bounds the segment lists of one field.
const maxRangeEntries = 1 << 20

type rangePattern struct {
	lo, hi uint64 // inclusive, in unsigned order
	inst   int32
}

// orderBits maps int64 bits to unsigned order.
func orderBits(v uint64, signed bool) uint64 {
	if signed {
		return v ^ (1 << 63)
	}
	return v
}

func buildRangeIndex(pats []rangePattern, signed bool) *rangeIndex {
	x := &rangeIndex{signed: signed}
	for _, p := range pats {
		x.points = append(x.points, p.lo)
		if p.hi != ^uint64(0) {
			x.points = append(x.points, p.hi+1)
		}
	}
	slices.Sort(x.points)
	x.points = slices.Compact(x.points)
	x.lists = make([][]int32, len(x.points))
	entries := 0
	for _, p := range pats {
		k := sort.Search(len(x.points), func(i int) bool { return x.points[i] >= p.lo })
		for ; k < len(x.points) && x.points[k] <= p.hi; k++ {
			x.lists[k] = append(x.lists[k], p.inst)
			if entries++; entries > maxRangeEntries {
				return nil
			}
		}
	}
	return x
}

func (x *rangeIndex) lookup(v uint64) []int32 {
	v = orderBits(v, x.signed)
	// Last segment starting at or below v.
	lo, hi := 0, len(x.points)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if x.points[m] <= v {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo == 0 {
		return nil
	}
	return x.lists[lo-1]
}
