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

// globLiteralPrefix is the text before the first wildcard.
func globLiteralPrefix(p string) string {
	if i := strings.IndexAny(p, "*?"); i >= 0 {
		return p[:i]
	}
	return p
}

// globLiteralSuffix is the text after the last wildcard.
func globLiteralSuffix(p string) string {
	return p[strings.LastIndexAny(p, "*?")+1:]
}
