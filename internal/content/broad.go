package content

import (
	"math"
	"net/netip"
	"regexp/syntax"
	"strings"
)

// broadness says why a compiled criterion matches every value its field
// can hold (every value of the right kind, for cidr), or "" when it does
// not. Such a criterion narrows nothing; an instance made of them matches
// every event, which with action block is a fleet-wide outage written as
// a detection. Op "any" says so on purpose and is not broad.
func broadness(f *Field, cc CompiledCriterion) string {
	switch cc.Op {
	case OpGlob:
		if strings.Trim(cc.Strs[0], "*") == "" {
			return "glob " + quote(cc.Strs[0]) + " matches every value"
		}
	case OpRegex:
		if why := broadRegex(cc.Strs[0], f.Type.folded()); why != "" {
			return "regex " + quote(cc.Strs[0]) + " " + why
		}
	case OpCIDR:
		if p, err := netip.ParsePrefix(cc.Strs[0]); err == nil && p.Bits() == 0 {
			if p.Addr().Is4() {
				return "CIDR " + cc.Strs[0] + " matches every IPv4 address"
			}
			return "CIDR " + cc.Strs[0] + " matches every IPv6 address"
		}
	case OpRange:
		lo, hi := uint64(0), uint64(math.MaxUint64)
		if f.Type == TypeInt {
			lo, hi = 1<<63, math.MaxInt64
		}
		if cc.Nums[0] == lo && cc.Nums[1] == hi {
			return "the range spans every " + f.Type.String()
		}
	case OpIn:
		if f.Type == TypeEnum && len(cc.Strs) == len(f.Values) {
			return "the values are every value of the enum"
		}
	}
	return ""
}

func quote(s string) string { return `"` + s + `"` }

// broadRegex says why a pattern matches every string, or "". Matching is
// a search, so a pattern that can match the empty string where every
// string has one — at its start — matches every string: ".*", "x?", "^",
// "(?s).*". A pattern that needs a character but takes any, like "." or
// "(?s).+", matches every non-empty string, which for an event field is
// just as broad.
func broadRegex(pattern string, fold bool) string {
	flags := syntax.Perl
	if fold {
		flags |= syntax.FoldCase
	}
	re, err := syntax.Parse(pattern, flags)
	if err != nil {
		return ""
	}
	re = re.Simplify()
	switch {
	case emptyAtStart(re):
		return "matches every value (it matches the empty string at the start of any)"
	case anyFirst(re):
		return "matches every non-empty value"
	}
	return ""
}

// emptyAtStart reports whether re can match the empty string at the start
// of any text. Assertions that hold there (^, \A) pass; those that depend
// on the text ($, \z, \b, \B) do not, conservatively.
func emptyAtStart(re *syntax.Regexp) bool {
	switch re.Op {
	case syntax.OpEmptyMatch, syntax.OpBeginLine, syntax.OpBeginText, syntax.OpStar, syntax.OpQuest:
		return true
	case syntax.OpRepeat:
		return re.Min == 0 || emptyAtStart(re.Sub[0])
	case syntax.OpCapture, syntax.OpPlus:
		return emptyAtStart(re.Sub[0])
	case syntax.OpConcat:
		for _, s := range re.Sub {
			if !emptyAtStart(s) {
				return false
			}
		}
		return true
	case syntax.OpAlternate:
		for _, s := range re.Sub {
			if emptyAtStart(s) {
				return true
			}
		}
	}
	return false
}

// anyFirst reports whether re matches every non-empty text at its start:
// it begins with a character that can be any character (with (?s)) or any
// but newline, and what follows can be empty.
func anyFirst(re *syntax.Regexp) bool {
	switch re.Op {
	case syntax.OpAnyChar, syntax.OpAnyCharNotNL:
		return true
	case syntax.OpCapture, syntax.OpPlus:
		return anyFirst(re.Sub[0])
	case syntax.OpRepeat:
		return re.Min >= 1 && anyFirst(re.Sub[0]) && (re.Min == 1 || emptyAtStart(re.Sub[0]))
	case syntax.OpConcat:
		for i, s := range re.Sub {
			if emptyAtStart(s) && (s.Op == syntax.OpBeginLine || s.Op == syntax.OpBeginText) {
				continue // ^ holds at the start
			}
			if !anyFirst(s) {
				return false
			}
			for _, rest := range re.Sub[i+1:] {
				if !emptyAtStart(rest) {
					return false
				}
			}
			return true
		}
	case syntax.OpAlternate:
		for _, s := range re.Sub {
			if anyFirst(s) {
				return true
			}
		}
	}
	return false
}
