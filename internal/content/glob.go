package content

import (
	"strings"
	"unicode/utf8"
)

// matchGlob matches a whole string against a pattern where '*' matches any
// run of characters and '?' exactly one. It backtracks only to the last
// star, so its cost is bounded by len(pattern)*len(s), and it allocates
// nothing. The pattern is already folded when fold is set.
func matchGlob(p, s string, fold bool) bool {
	pi, si := 0, 0
	star, mark := -1, 0
	for si < len(s) {
		switch {
		case pi < len(p) && p[pi] == '*':
			star, mark = pi, si
			pi++
		case pi < len(p) && p[pi] == '?':
			_, n := utf8.DecodeRuneInString(s[si:])
			si += n
			pi++
		case pi < len(p) && p[pi] == 0xEF && strings.HasPrefix(p[pi:], "\uFFFD") && runeErrorAt(s, si) > 0:
			// As in regexp (and so in Reference), U+FFFD in the pattern
			// also matches one byte that is not valid UTF-8.
			pi += len("\uFFFD")
			si += runeErrorAt(s, si)
		case pi < len(p) && (p[pi] == s[si] || (fold && p[pi] == lowerASCII(s[si]))):
			pi++
			si++
		case star >= 0:
			_, n := utf8.DecodeRuneInString(s[mark:])
			mark += n
			pi, si = star+1, mark
		default:
			return false
		}
	}
	for pi < len(p) && p[pi] == '*' {
		pi++
	}
	return pi == len(p)
}

// runeErrorAt returns the width of the U+FFFD or invalid byte at s[i],
// or 0 when s[i] starts another character.
func runeErrorAt(s string, i int) int {
	if r, n := utf8.DecodeRuneInString(s[i:]); r == utf8.RuneError {
		return n
	}
	return 0
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
