package content

import (
	"encoding/binary"
	"net/netip"
)

// The indexes key on 64-bit hashes and re-check every candidate in full,
// so a collision costs an extra evaluation, never a wrong answer. Two
// hashes serve them. Exact keys (equals, in, CIDR prefixes, addresses)
// are hashed a word at a time: they are hashed whole, once per field and
// event, and were a fifth of the evaluator's time byte by byte. Prefixes
// and suffixes are FNV-1a, byte by byte, because a lookup extends one
// running hash through the index's ascending lengths, which a word-wise
// hash cannot do across lengths that are not multiples of eight.

const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211

	mixK1 = 0x9E3779B97F4A7C15
	mixK2 = 0xBF58476D1CE4E5B9
)

func lowerASCII(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

func fnvStep(h uint64, c byte, fold bool) uint64 {
	if fold {
		c = lowerASCII(c)
	}
	return (h ^ uint64(c)) * fnvPrime
}

// fnvString is the prefix index's key: the running hash a lookup reaches
// after len(s) bytes.
func fnvString(s string, fold bool) uint64 {
	h := uint64(fnvOffset)
	for i := 0; i < len(s); i++ {
		h = fnvStep(h, s[i], fold)
	}
	return h
}

// fnvReverse is the suffix index's key, hashed from the last byte.
func fnvReverse(s string, fold bool) uint64 {
	h := uint64(fnvOffset)
	for i := len(s) - 1; i >= 0; i-- {
		h = fnvStep(h, s[i], fold)
	}
	return h
}

// foldWord lowers the ASCII capitals among eight bytes at once, as
// lowerASCII does to one: a byte is a capital when its low seven bits are
// at least 'A' and at most 'Z' and its high bit is clear.
func foldWord(w uint64) uint64 {
	const ones, high = 0x0101010101010101, 0x8080808080808080
	low := w &^ high
	atLeastA := low + (0x80-'A')*ones
	aboveZ := low + (0x80-'Z'-1)*ones
	capital := atLeastA &^ aboveZ &^ w & high
	return w | capital>>2
}

func mix(h, w uint64) uint64 {
	h = (h ^ w) * mixK1
	return h ^ h>>29
}

func finish(h uint64) uint64 {
	h ^= h >> 32
	h *= mixK2
	return h ^ h>>29
}

// hashString is the exact-key hash of s, with ASCII capitals lowered when
// fold is set (the index's keys are folded when compiled).
func hashString(s string, fold bool) uint64 {
	h := uint64(len(s)) * mixK2
	for ; len(s) >= 8; s = s[8:] {
		w := uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
			uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
		if fold {
			w = foldWord(w)
		}
		h = mix(h, w)
	}
	if len(s) > 0 {
		var w uint64
		for i := len(s) - 1; i >= 0; i-- {
			w = w<<8 | uint64(s[i])
		}
		if fold {
			w = foldWord(w)
		}
		h = mix(h, w)
	}
	return finish(h)
}

func hashAddr(a netip.Addr) uint64 {
	b := a.As16()
	h := uint64(16)
	if a.Is4() {
		h = 4
	}
	h = mix(h*mixK2, binary.LittleEndian.Uint64(b[:8]))
	return finish(mix(h, binary.LittleEndian.Uint64(b[8:])))
}

// keyTable is one index's hash table from a key to the instances anchored
// on it. It is filled while the bundle is indexed and then frozen into an
// open-addressed array probed with the key itself: the keys are hashes
// already, so a Go map would hash them again, and its lookups were a
// third of the evaluator's time once the keys were hashed word-wise.
type keyTable struct {
	build map[uint64][]int32 // while indexing; nil once frozen
	slots []keySlot
	mask  uint64
}

type keySlot struct {
	key  uint64
	list []int32 // nil: an empty slot
}

func newKeyTable() keyTable { return keyTable{build: map[uint64][]int32{}} }

func (t *keyTable) freeze() {
	if len(t.build) > 0 {
		size := 2
		for size < 2*len(t.build) {
			size *= 2
		}
		t.slots, t.mask = make([]keySlot, size), uint64(size-1)
		for k, l := range t.build {
			i := finish(k) & t.mask
			for t.slots[i].list != nil {
				i = (i + 1) & t.mask
			}
			t.slots[i] = keySlot{key: k, list: l}
		}
	}
	t.build = nil
}

func (t *keyTable) empty() bool { return len(t.slots) == 0 }

// get returns the instances anchored on k; the table is at most half
// full, so a miss ends at an empty slot within a few probes.
func (t *keyTable) get(k uint64) []int32 {
	if len(t.slots) == 0 {
		return nil
	}
	for i := finish(k) & t.mask; ; i = (i + 1) & t.mask {
		s := &t.slots[i]
		if s.list == nil || s.key == k {
			return s.list
		}
	}
}
