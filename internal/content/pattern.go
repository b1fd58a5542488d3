package content

import (
	"fmt"
	"regexp"
	"regexp/syntax"
	"unicode"
	"unicode/utf8"
)

// Regex criteria on folded fields (path, sha256).
//
// The reference evaluator defines the semantics and the indexed one must
// compute the same, so both get their program from planRegex:
//
//   - On a folded field the pattern runs as "(?i)" + pattern against the
//     input as the event gives it. Case folding is therefore regexp's
//     Unicode simple folding, not the ASCII folding of the other operators:
//     "É" matches "é", and "k" matches the Kelvin sign U+212A.
//   - Inline flags apply on top of that, in their scope: "(?-i)" or
//     "(?-i:...)" turns folding off, so "(?-i)^C:" matches "C:" but not
//     "c:" even on a path field. "(?s)", "(?m)" and "(?U)" mean what they
//     mean in RE2.
//   - On other fields the pattern runs unchanged and "(?i)" folds as RE2
//     does.
//
// The index may key a regex on the literal text every match begins with,
// but only text that the flags in force at each character make exact
// (see indexRune); the rest of the pattern is left to the program.

// regexPlan is how a regex criterion is evaluated: the program both
// evaluators run, and the literal every input it matches begins with, in
// the form of the field's index keys (ASCII-folded on a folded field), or
// "" when no literal can key it.
type regexPlan struct {
	re  *regexp.Regexp
	key string
}

// planRegex is the single place that turns a regex criterion into a
// program and an index key, so that the index and the program can never
// disagree about case or flags.
func planRegex(pattern string, fold bool) (regexPlan, error) {
	re, err := compileRegex(pattern, fold)
	if err != nil {
		return regexPlan{}, fmt.Errorf("regex %q: %w", pattern, err)
	}
	// Parse the very text that was compiled, flags and all, so the key is
	// read off the program that runs.
	tree, err := syntax.Parse(re.String(), syntax.Perl)
	if err != nil {
		return regexPlan{}, fmt.Errorf("regex %q: %w", pattern, err)
	}
	return regexPlan{re: re, key: regexKey(tree, fold)}, nil
}

// regexKey is the literal that begins every match of a regex anchored at
// the start of the text, as far as it can key an index that is ASCII-folded
// when foldedIndex is set; "" for unanchored patterns.
func regexKey(re *syntax.Regexp, foldedIndex bool) string {
	if re.Op != syntax.OpConcat || len(re.Sub) < 2 || re.Sub[0].Op != syntax.OpBeginText {
		return ""
	}
	var key []byte
	for _, sub := range re.Sub[1:] {
		if sub.Op != syntax.OpLiteral {
			break
		}
		for _, r := range sub.Rune {
			k, ok := indexRune(r, sub.Flags&syntax.FoldCase != 0, foldedIndex)
			if !ok {
				return string(key)
			}
			key = utf8.AppendRune(key, k)
		}
	}
	return string(key)
}

// indexRune says how a literal rune of a regex may appear in an index key.
// A case-sensitive rune matches only itself, so it keys either index (on a
// folded one in its ASCII-folded form, as the input will be). A caseless
// rune matches its whole fold orbit: only a folded index can hold it, and
// only when the orbit is one ASCII letter in both cases; "k" and "s" fold
// to non-ASCII runes too, and no ASCII folding can stand for those.
// U+FFFD cannot key anything: it also matches bytes that are not UTF-8.
func indexRune(r rune, caseless, foldedIndex bool) (rune, bool) {
	if r == utf8.RuneError || !utf8.ValidRune(r) {
		return 0, false
	}
	if caseless {
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			if !foldedIndex || f >= utf8.RuneSelf || r >= utf8.RuneSelf {
				return 0, false
			}
		}
	}
	if foldedIndex && 'A' <= r && r <= 'Z' {
		r += 'a' - 'A'
	}
	return r, true
}
