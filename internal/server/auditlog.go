package server

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strconv"
	"time"

	"github.com/ringfence/ringfence/internal/store"
)

// The audit log is a chain keyed with the server's audit key (an HMAC:
// someone who can write the database but not read the key cannot rewrite
// it and recompute the links), and checkpoints of it signed with the
// server's ed25519 audit signing key, which anyone holding the public key
// checks offline against an export. docs/api.md, "Audit log".

// AuditKeyID names an audit signing key: the first 8 bytes of the SHA-256
// of its public key, in hex.
func AuditKeyID(pub ed25519.PublicKey) string {
	h := sha256.Sum256(pub)
	return hex.EncodeToString(h[:8])
}

// checkpointLoop signs the head of the audit log about every
// CheckpointEvery, when it moved.
func (s *Server) checkpointLoop(ctx context.Context) {
	if s.cfg.CheckpointKey == nil {
		return
	}
	t := time.NewTicker(s.cfg.CheckpointEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := s.Checkpoint(context.WithoutCancel(ctx)); err != nil {
				s.log.Warn("audit checkpoint not written; retrying", "err", err)
			}
		}
	}
}

// Checkpoint signs the audit log's last entry, unless it is signed
// already. Any replica may: a checkpoint of the same entry is stored once.
func (s *Server) Checkpoint(ctx context.Context) error {
	if s.cfg.CheckpointKey == nil {
		return nil
	}
	after := s.lastCheckpoint.Load()
	var head *store.AuditEntry
	for {
		es, err := s.store.ListAudit(ctx, after, 10000)
		if err != nil {
			return err
		}
		if len(es) == 0 {
			break
		}
		head = &es[len(es)-1]
		after = head.Seq
		if len(es) < 10000 {
			break
		}
	}
	if head == nil {
		return nil
	}
	c := store.AuditCheckpoint{Seq: head.Seq, Hash: head.Hash, Time: s.now(), KeyID: AuditKeyID(s.cfg.CheckpointKey.Public().(ed25519.PublicKey)),
		Signature: ed25519.Sign(s.cfg.CheckpointKey, store.CheckpointMessage(head.Seq, head.Hash))}
	if err := s.store.AddAuditCheckpoint(ctx, c); err != nil {
		return err
	}
	s.lastCheckpoint.Store(head.Seq)
	return nil
}

// AuditVerdict is what the server finds checking its audit log with its
// key: the entries, the checkpoints, and the first thing that is wrong.
type AuditVerdict struct {
	Verified    bool   `json:"verified"`
	Entries     int64  `json:"entries"`
	Checkpoints int    `json:"checkpoints"`
	BrokenSeq   int64  `json:"broken_seq,omitempty"`
	Reason      string `json:"reason,omitempty"`
}

// VerifyAudit walks the whole log with the audit key and checks every
// checkpoint against the entry it signs.
func (s *Server) VerifyAudit(ctx context.Context) (AuditVerdict, error) {
	var v AuditVerdict
	cps, err := s.allCheckpoints(ctx)
	if err != nil {
		return v, err
	}
	v.Checkpoints = len(cps)
	var pub ed25519.PublicKey
	if s.cfg.CheckpointKey != nil {
		pub = s.cfg.CheckpointKey.Public().(ed25519.PublicKey)
	}
	check := store.NewAuditChecker(s.cfg.AuditKey, pub, cps)
	var after int64
	for {
		es, err := s.store.ListAudit(ctx, after, 10000)
		if err != nil {
			return v, err
		}
		if seq, why := check.Entries(after, es); seq != 0 {
			v.BrokenSeq, v.Reason = seq, why
			return v, nil
		}
		v.Entries += int64(len(es))
		if len(es) < 10000 {
			break
		}
		after = es[len(es)-1].Seq
	}
	if seq, why := check.Done(); seq != 0 {
		v.BrokenSeq, v.Reason = seq, why
		return v, nil
	}
	v.Verified = true
	return v, nil
}

func (s *Server) allCheckpoints(ctx context.Context) ([]store.AuditCheckpoint, error) {
	var out []store.AuditCheckpoint
	var after int64
	for {
		cs, err := s.store.ListAuditCheckpoints(ctx, after, 10000)
		if err != nil {
			return nil, err
		}
		out = append(out, cs...)
		if len(cs) < 10000 {
			return out, nil
		}
		after = cs[len(cs)-1].Seq
	}
}

// handleAuditVerify answers GET /v1/audit/verify.
func (s *Server) handleAuditVerify(w http.ResponseWriter, r *http.Request, p Principal) error {
	if !p.isAdmin() {
		return forbidden("only the operator's admin tokens read the audit log")
	}
	v, err := s.VerifyAudit(r.Context())
	if err != nil {
		return storeError("audit log", err)
	}
	if !v.Verified {
		s.notifyAuditBroken(r.Context(), v)
	}
	writeJSON(w, http.StatusOK, v)
	return nil
}

// AuditPublicKey is the audit signing key's public half.
type AuditPublicKey struct {
	KeyID     string `json:"key_id"`
	PublicKey []byte `json:"public_key"` // ed25519, 32 bytes (base64 in JSON)
}

// handleAuditKey answers GET /v1/audit/key.
func (s *Server) handleAuditKey(w http.ResponseWriter, r *http.Request, p Principal) error {
	if !p.isAdmin() {
		return forbidden("only the operator's admin tokens read the audit log")
	}
	if s.cfg.CheckpointKey == nil {
		return notFound("this server signs no audit checkpoints")
	}
	pub := s.cfg.CheckpointKey.Public().(ed25519.PublicKey)
	writeJSON(w, http.StatusOK, AuditPublicKey{KeyID: AuditKeyID(pub), PublicKey: pub})
	return nil
}

// handleAuditCheckpoints answers GET /v1/audit/checkpoints?after=SEQ.
func (s *Server) handleAuditCheckpoints(w http.ResponseWriter, r *http.Request, p Principal) error {
	if !p.isAdmin() {
		return forbidden("only the operator's admin tokens read the audit log")
	}
	var after int64
	if v := r.URL.Query().Get("after"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return badRequest("after: want a sequence number from 0, got %q", v)
		}
		after = n
	}
	cs, err := s.store.ListAuditCheckpoints(r.Context(), after, 10000)
	if err != nil {
		return storeError("audit checkpoints", err)
	}
	if cs == nil {
		cs = []store.AuditCheckpoint{}
	}
	writeJSON(w, http.StatusOK, cs)
	return nil
}
