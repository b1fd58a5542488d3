package store

import (
	"crypto/ed25519"
	"fmt"
)

// AuditChecker checks an audit log page by page, from its first entry:
// that the entries are contiguous and link up (VerifyChain, with the audit
// key when the checker has it), and that every checkpoint is signed with
// the audit signing key and names the hash its entry has, so a log
// rewritten by someone without the keys, or cut short, is found. The
// server runs it with both keys; `ringfence audit verify` runs it with the
// public key alone, online or on an export.
type AuditChecker struct {
	key   []byte
	pub   ed25519.PublicKey
	cps   []AuditCheckpoint // by seq
	next  int               // the first checkpoint not yet matched
	prev  string
	keyed bool
	last  int64
}

// NewAuditChecker checks with key (nil: keyed hashes are checked for
// their links only) and pub (nil: checkpoints are not checked).
func NewAuditChecker(key []byte, pub ed25519.PublicKey, checkpoints []AuditCheckpoint) *AuditChecker {
	if pub == nil {
		checkpoints = nil
	}
	return &AuditChecker{key: key, pub: pub, cps: checkpoints}
}

// StartAfter checks a log from entry after+1 on, taking prev as the hash
// of entry after (an export that does not start at the first entry:
// checkpoints cover what it holds).
func (c *AuditChecker) StartAfter(after int64, prev string) {
	c.prev, c.last = prev, after
}

// Entries checks the entries after sequence number after; it returns the
// first bad entry's sequence number and why, or 0.
func (c *AuditChecker) Entries(after int64, es []AuditEntry) (int64, string) {
	for i, e := range es {
		if want := after + int64(i) + 1; e.Seq != want {
			return want, fmt.Sprintf("entry %d is missing: the log goes from %d to %d", want, want-1, e.Seq)
		}
	}
	if seq, why := VerifyChain(c.key, c.prev, c.keyed, es); seq != 0 {
		return seq, why
	}
	for _, e := range es {
		for c.next < len(c.cps) && c.cps[c.next].Seq <= e.Seq {
			cp := c.cps[c.next]
			c.next++
			if cp.Seq < e.Seq {
				continue // a page boundary cannot skip one: entries are contiguous
			}
			if seq, why := c.checkpoint(cp, e); seq != 0 {
				return seq, why
			}
		}
		c.keyed = c.keyed || e.Keyed
		c.prev, c.last = e.Hash, e.Seq
	}
	return 0, ""
}

func (c *AuditChecker) checkpoint(cp AuditCheckpoint, e AuditEntry) (int64, string) {
	if !ed25519.Verify(c.pub, CheckpointMessage(cp.Seq, cp.Hash), cp.Signature) {
		return cp.Seq, fmt.Sprintf("the checkpoint of entry %d (key %s) has a bad signature: it was not made with the audit signing key", cp.Seq, cp.KeyID)
	}
	if cp.Hash != e.Hash {
		return e.Seq, fmt.Sprintf("entry %d hashes to %.12s…, but its signed checkpoint says %.12s…: the log was rewritten up to it", e.Seq, e.Hash, cp.Hash)
	}
	return 0, ""
}

// Done ends the check: a checkpoint of an entry past the log's end means
// entries were cut from it.
func (c *AuditChecker) Done() (int64, string) {
	for _, cp := range c.cps[c.next:] {
		if ed25519.Verify(c.pub, CheckpointMessage(cp.Seq, cp.Hash), cp.Signature) {
			return c.last + 1, fmt.Sprintf("the log ends at entry %d, but a signed checkpoint names entry %d: entries were cut from its end", c.last, cp.Seq)
		}
	}
	return 0, ""
}
