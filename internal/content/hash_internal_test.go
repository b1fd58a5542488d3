package content

import (
	"math/rand/v2"
	"net/netip"
	"testing"
)

// The eq index is keyed by hashString of the compiled (already folded)
// key and looked up by hashString of the raw input with fold set, so the
// two must agree byte for byte with lowerASCII on every length (the word
// loop and the tail) and on bytes around the capitals and above ASCII,
// where a word-wise fold could carry into a neighbour.
func TestHashStringFoldsAsLowerASCII(t *testing.T) {
	r := rand.New(rand.NewPCG(19, 7))
	alphabet := []byte{'@', 'A', 'M', 'Z', '[', '`', 'a', 'z', '{', 0x00, 0x7f, 0x80, 0xc1, 0xda, 0xdb, 0xff, '0'}
	for n := 0; n < 40; n++ {
		for range 200 {
			raw, low := make([]byte, n), make([]byte, n)
			for i := range raw {
				raw[i] = alphabet[r.IntN(len(alphabet))]
				low[i] = lowerASCII(raw[i])
			}
			if got, want := hashString(string(raw), true), hashString(string(low), false); got != want {
				t.Fatalf("%q folded hashes %x, its ASCII-lowered form %q %x", raw, got, low, want)
			}
			if fnvString(string(raw), true) != fnvString(string(low), false) {
				t.Fatalf("%q: the prefix hash folds differently", raw)
			}
		}
	}
}

// Every byte of a word is folded exactly as lowerASCII folds it alone.
func TestFoldWordIsLowerASCIIPerByte(t *testing.T) {
	for c := 0; c < 256; c++ {
		for _, fill := range []byte{0x00, 'Z', 0xff, 'a'} {
			var w uint64
			for i := range 8 {
				b := fill
				if i%3 == 0 {
					b = byte(c)
				}
				w |= uint64(b) << (8 * i)
			}
			got := foldWord(w)
			for i := range 8 {
				in, out := byte(w>>(8*i)), byte(got>>(8*i))
				if out != lowerASCII(in) {
					t.Fatalf("byte %#x beside %#x folds to %#x, want %#x", in, fill, out, lowerASCII(in))
				}
			}
		}
	}
}

// Keys that differ only in length, in a trailing zero byte or between an
// IPv4 address and its IPv4-mapped IPv6 form hash apart: they would
// collide harmlessly, but every collision is an extra evaluation per
// event.
func TestHashKeepsNearKeysApart(t *testing.T) {
	seen := map[uint64]string{}
	for _, s := range []string{"", "\x00", "\x00\x00", "a", "a\x00", "abcdefgh", "abcdefgh\x00", "abcdefg", "ABCDEFGH"} {
		h := hashString(s, false)
		if prev, ok := seen[h]; ok {
			t.Errorf("%q and %q hash alike", prev, s)
		}
		seen[h] = s
	}
	v4, v6 := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("::ffff:10.0.0.1")
	if hashAddr(v4) == hashAddr(v6) {
		t.Errorf("%v and %v hash alike", v4, v6)
	}
}
