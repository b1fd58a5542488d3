package content

import (
	"slices"
	"strings"
	"unicode/utf8"
)

// A glob matches the whole input: '*' any run of characters, '?' exactly
// one, U+FFFD one U+FFFD or one byte that is not valid UTF-8 (as in regexp,
// and so in Reference, which runs globs as regexes). Inputs are matched
// character by character as regexp decodes them; on folded fields the
// pattern is already folded and input bytes are folded as they are read.
//
// Matching takes time linear in the input, whatever the pattern. The
// pattern is cut at its stars into segments; the first must match at the
// start, the last at the end, and each one between is committed to its
// leftmost occurrence after the previous one. That greedy choice is safe
// because every character of a segment consumes exactly one character of
// the input, so the occurrence that starts first also ends first and
// leaves the most room for the rest. Each input byte is then read by one
// segment search only. A segment without '?' or U+FFFD is searched as
// text with Knuth-Morris-Pratt, at most two steps per byte; one with
// wildcards by bit-parallel Shift-And, one word operation per input
// character for every 64 characters of the segment: one for segments of
// up to 64 characters, the usual case, and at most 64 at MaxValueLen.
// (Matching '?' in linear time independent of the pattern would take
// heavier machinery; this bound is fixed by MaxValueLen.)

// anyRune stands for '?' in a segment: it matches every character.
// utf8.RuneError in a segment stands for U+FFFD, which matches the
// character the decoder yields for an invalid byte as well.
const anyRune rune = -1

// globMatcher is a glob pattern prepared for matching. It holds scratch
// space, as the Evaluator that owns it does.
type globMatcher struct {
	fold bool
	star bool // false: the pattern is one segment that must match the whole input
	segs []globSeg
}

// globSeg is the part of a pattern between two stars.
type globSeg struct {
	items []rune     // first segment with wildcards: a rune, anyRune or utf8.RuneError per character
	wild  bool       // some item is anyRune or utf8.RuneError
	lit   string     // the segment as text, when it has no wildcard
	kmp   *litSearch // searches a literal segment between stars
	sa    *shiftAnd  // searches a wildcard segment after the first star
	// need is the fewest input bytes this segment and the ones after it
	// can match (a character is at least a byte), so a search that cannot
	// succeed is not started.
	need int
}

// compileGlob prepares a glob pattern; it decodes the pattern as the
// reference does, so an invalid byte in it is a U+FFFD.
func compileGlob(p string, fold bool) *globMatcher {
	g := &globMatcher{fold: fold, star: strings.Contains(p, "*")}
	parts := strings.Split(p, "*")
	for i, part := range parts {
		middle := i > 0 && i < len(parts)-1
		if middle && part == "" {
			continue // consecutive stars are one star
		}
		var s globSeg
		s.need = len(part) // bytes of a literal; at least the characters of a wildcard segment
		for _, r := range part {
			if r == '?' {
				r = anyRune
			}
			s.wild = s.wild || r == anyRune || r == utf8.RuneError
			s.items = append(s.items, r)
		}
		// Only a wildcard segment matched in place (the first) keeps its
		// items; the others keep the tables they are searched with.
		switch {
		case s.wild && i > 0:
			s.sa = newShiftAnd(s.items)
			s.need = len(s.items)
			s.items = nil
		case s.wild:
			s.need = len(s.items)
		default:
			s.lit = string(s.items)
			s.items = nil
			if middle {
				s.kmp = newLitSearch(s.lit, fold)
			}
		}
		g.segs = append(g.segs, s)
	}
	for k := len(g.segs) - 2; k >= 0; k-- {
		g.segs[k].need += g.segs[k+1].need
	}
	return g
}

// match reports whether the glob matches the whole of s.
func (g *globMatcher) match(s string) bool {
	ok, _ := g.run(s)
	return ok
}

// run matches s and counts the steps taken, so that tests can check the
// bound on the work rather than time it.
func (g *globMatcher) run(s string) (ok bool, steps int) {
	first := &g.segs[0]
	if len(s) < first.need {
		return false, 1
	}
	pos, ok, n := g.matchAt(first, s, 0)
	steps += n
	if !ok {
		return false, steps
	}
	if !g.star {
		return pos == len(s), steps
	}
	last := &g.segs[len(g.segs)-1]
	for k := 1; k < len(g.segs)-1; k++ {
		seg := &g.segs[k]
		if len(s)-pos < seg.need {
			return false, steps + 1
		}
		var end int
		if !seg.wild {
			i, n := seg.kmp.index(s, pos)
			steps += n
			if i < 0 {
				return false, steps
			}
			end = i + len(seg.lit)
		} else {
			end, n = seg.sa.first(s, pos, g.fold)
			steps += n
			if end < 0 {
				return false, steps
			}
		}
		pos = end
	}
	if !last.wild {
		// The text after the last star is at the end or nowhere; it starts
		// with a whole character, so its position is a character boundary.
		i := len(s) - len(last.lit)
		steps += len(last.lit)
		return i >= pos && equalFold(s[i:], last.lit, g.fold), steps
	}
	ok, n = last.sa.atEnd(s, pos, g.fold)
	return ok, steps + n
}

// matchAt matches a segment at s[pos:] and returns where it ends.
func (g *globMatcher) matchAt(seg *globSeg, s string, pos int) (end int, ok bool, steps int) {
	if !seg.wild {
		n := len(seg.lit)
		return pos + n, len(s)-pos >= n && equalFold(s[pos:pos+n], seg.lit, g.fold), n
	}
	for _, it := range seg.items {
		steps++
		if pos >= len(s) {
			return 0, false, steps
		}
		r, w := decodeFold(s, pos, g.fold)
		if it != anyRune && it != r {
			return 0, false, steps
		}
		pos += w
	}
	return pos, true, steps
}

// decodeFold decodes the character at s[i] as regexp does (an invalid
// byte is utf8.RuneError of width 1), folding ASCII case when fold is set.
func decodeFold(s string, i int, fold bool) (rune, int) {
	if c := s[i]; c < utf8.RuneSelf {
		if fold {
			c = lowerASCII(c)
		}
		return rune(c), 1
	}
	return utf8.DecodeRuneInString(s[i:])
}

// litSearch finds a literal in a text by Knuth-Morris-Pratt: each text
// byte is read once, and the pattern never moves back more than it moved
// forward, so a search costs at most two steps per byte whatever the
// pattern and text.
type litSearch struct {
	pat  string // folded when fold is set
	fold bool
	// border[i] is the length of the longest proper prefix of pat[:i+1]
	// that is also its suffix: where to resume after a mismatch.
	border []int32
}

func newLitSearch(pat string, fold bool) *litSearch {
	l := &litSearch{pat: pat, fold: fold, border: make([]int32, len(pat))}
	k := int32(0)
	for i := 1; i < len(pat); i++ {
		for k > 0 && pat[i] != pat[k] {
			k = l.border[k-1]
		}
		if pat[i] == pat[k] {
			k++
		}
		l.border[i] = k
	}
	return l
}

// index returns where pat first occurs in s at or after from, or -1, and
// the steps taken.
func (l *litSearch) index(s string, from int) (at, steps int) {
	p := l.pat
	if len(p) == 0 {
		return from, 0
	}
	if len(s)-from < len(p) {
		return -1, 1
	}
	// Skipping to the next possible first byte is linear too, and lets
	// the common case run at memchr speed.
	skip := !l.fold || lowerASCII(p[0]) == upperASCII(p[0])
	k := 0
	for i := from; i < len(s); i++ {
		if k == 0 && skip && s[i] != p[0] {
			j := strings.IndexByte(s[i:], p[0])
			if j < 0 {
				return -1, steps + len(s) - i
			}
			steps += j
			i += j
		}
		steps++
		c := s[i]
		if l.fold {
			c = lowerASCII(c)
		}
		for k > 0 && p[k] != c {
			k = int(l.border[k-1])
			steps++
		}
		if p[k] == c {
			k++
		}
		if k == len(p) {
			return i + 1 - len(p), steps
		}
	}
	return -1, steps
}

// contains reports whether pat occurs in s.
func (l *litSearch) contains(s string) bool {
	i, _ := l.index(s, 0)
	return i >= 0
}

func upperASCII(c byte) byte {
	if 'a' <= c && c <= 'z' {
		return c - ('a' - 'A')
	}
	return c
}

// shiftAnd finds a segment with wildcards by bit-parallel Shift-And over
// input characters: bit i of the state is set when the segment's first
// i+1 items match the characters just read, so one shift and one AND per
// 64 items advance every partial match at once.
type shiftAnd struct {
	n     int    // items
	words int    // 64-bit words per state
	runes []rune // the literal items' distinct runes, ascending
	// masks holds, for each character class, the items that accept it,
	// words per class: class 0 is every character that is no literal item
	// (accepted by '?' only), class k+1 is runes[k].
	masks []uint64
	ascii [utf8.RuneSelf]uint16 // class of each ASCII character
	state []uint64              // scratch when words > 1
}

func newShiftAnd(items []rune) *shiftAnd {
	x := &shiftAnd{n: len(items), words: (len(items) + 63) / 64}
	for _, it := range items {
		if it != anyRune {
			x.runes = append(x.runes, it)
		}
	}
	slices.Sort(x.runes)
	x.runes = slices.Compact(x.runes)
	for k, r := range x.runes {
		if r < utf8.RuneSelf {
			x.ascii[r] = uint16(k + 1)
		}
	}
	x.masks = make([]uint64, (len(x.runes)+1)*x.words)
	for i, it := range items {
		w, bit := i/64, uint64(1)<<(i%64)
		if it != anyRune {
			k, _ := slices.BinarySearch(x.runes, it)
			x.masks[(k+1)*x.words+w] |= bit
			continue
		}
		for c := 0; c <= len(x.runes); c++ {
			x.masks[c*x.words+w] |= bit
		}
	}
	if x.words > 1 {
		x.state = make([]uint64, x.words)
	}
	return x
}

// next decodes the character at s[i] (folded when fold is set) and
// returns its class and width.
func (x *shiftAnd) next(s string, i int, fold bool) (class, width int) {
	if c := s[i]; c < utf8.RuneSelf {
		if fold {
			c = lowerASCII(c)
		}
		return int(x.ascii[c]), 1
	}
	r, w := utf8.DecodeRuneInString(s[i:])
	if k, ok := slices.BinarySearch(x.runes, r); ok {
		return k + 1, w
	}
	return 0, w
}

// first returns where the first occurrence of the segment in s[from:]
// ends, or -1, and the steps taken.
func (x *shiftAnd) first(s string, from int, fold bool) (end, steps int) {
	end, _, steps = x.scan(s, from, fold, true)
	return end, steps
}

// atEnd reports whether the segment occurs in s[from:] ending at the end
// of s, and the steps taken.
func (x *shiftAnd) atEnd(s string, from int, fold bool) (ok bool, steps int) {
	_, ok, steps = x.scan(s, from, fold, false)
	return ok, steps
}

// scan runs the automaton over s[from:]. With stop set it returns at the
// first match; otherwise it reads to the end and reports whether a match
// ends there.
func (x *shiftAnd) scan(s string, from int, fold, stop bool) (end int, last bool, steps int) {
	if len(s)-from < x.n {
		return -1, false, 1 // every item takes at least a byte
	}
	top := uint64(1) << ((x.n - 1) % 64)
	if x.words == 1 {
		var d uint64
		for i := from; i < len(s); {
			k, w := x.next(s, i, fold)
			i += w
			steps++
			d = (d<<1 | 1) & x.masks[k]
			if d&top != 0 && stop {
				return i, true, steps
			}
		}
		return -1, d&top != 0, steps
	}
	d := x.state
	clear(d)
	// After t characters no bit above t-1 is set, so only the low words
	// need work until the state has had time to fill.
	for i, t := from, 0; i < len(s); t++ {
		k, w := x.next(s, i, fold)
		i += w
		active := min(x.words, t/64+1)
		m := x.masks[k*x.words : k*x.words+active]
		live := d[:active]
		carry := uint64(1)
		for j, dj := range live {
			live[j] = (dj<<1 | carry) & m[j]
			carry = dj >> 63
		}
		steps += active
		if d[len(d)-1]&top != 0 && stop {
			return i, true, steps
		}
	}
	return -1, d[len(d)-1]&top != 0, steps
}

// globLiteralPrefix is the text before the first wildcard. U+FFFD counts
// as one: it also matches bytes that are not U+FFFD, so it cannot anchor.
func globLiteralPrefix(p string) string {
	if i := strings.IndexAny(p, "*?\uFFFD"); i >= 0 {
		return p[:i]
	}
	return p
}

// globLiteralSuffix is the text after the last wildcard (or U+FFFD).
func globLiteralSuffix(p string) string {
	i := strings.LastIndexAny(p, "*?\uFFFD")
	if i < 0 {
		return p
	}
	_, n := utf8.DecodeRuneInString(p[i:])
	return p[i+n:]
}
