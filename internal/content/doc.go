// Package content holds Ringfence's detection content: template types (the
// schema of one kind of sensor event), capability manifests (what each agent
// version really supplies), bundles (a channel's versioned template
// instances), the compiler to a canonical, hashed form, the validator, the
// memory-safe indexed interpreter and preflight.
//
// The package exists to make the 19 July 2024 class of defect impossible to
// ship: a bundle is checked against the input arity of every agent version
// that will load it, and run through the same interpreter the agents use
// before anything is released. The interpreter never reads an input the
// event lacks; such a criterion is an error for its instance, never a crash.
//
// # Case and characters
//
// Path and sha256 fields compare case-insensitively. For equals, in,
// prefix, suffix, contains and glob that means ASCII folding: A-Z and a-z
// are one, every other byte is compared as it is, so "É" and "é" differ. A
// regex on a path field instead runs as "(?i)" followed by the pattern,
// against the input as the event gives it: it folds as RE2 does, by
// Unicode simple folding ("É" matches "é", "k" matches the Kelvin sign
// U+212A), and inline flags apply in their scope, so "(?-i)" or
// "(?-i:...)" makes that part of the pattern case-sensitive again. The
// reference evaluator defines these semantics; the indexed evaluator takes
// its regex program, and the literal it may index a regex on, from the same
// function (planRegex), so the two cannot drift apart.
//
// Globs and regexes read the input as regexp decodes it: a glob's '?' is
// one character of one to four bytes, or one byte that is not valid UTF-8;
// U+FFFD in a pattern also matches such a byte. Every matcher runs in time
// linear in the input: an event of MaxInputLen bytes costs a bounded
// number of steps per byte, whatever the pattern.
package content
