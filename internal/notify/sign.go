package notify

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// SignatureHeader carries a delivery's signature:
//
//	Ringfence-Signature: t=1767787200,v1=5257a869...
//
// t is the Unix time of sending, v1 the hex HMAC-SHA256, keyed with the
// subscription's secret, of t, a full stop and the body as sent. A
// receiver recomputes it, compares in constant time, and refuses a t
// further than its tolerance from its own clock (Tolerance): a captured
// delivery cannot be replayed later. Several v1 values may appear, comma
// separated: one matching is enough.
const SignatureHeader = "Ringfence-Signature"

// Tolerance is the replay window receivers should use: a delivery whose
// timestamp is more than five minutes from the receiver's clock is
// refused. Retries are signed afresh, so a late retry is not refused.
const Tolerance = 5 * time.Minute

// Sign is the SignatureHeader value for body sent at t.
func Sign(secret string, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	return "t=" + ts + ",v1=" + mac(secret, ts, body)
}

func mac(secret, ts string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

// Errors Verify returns, wrapped with detail.
var (
	ErrNoSignature  = errors.New("no valid signature")
	ErrStaleRequest = errors.New("timestamp outside the replay window")
)

// Verify checks a delivery as a receiver should: header is the
// SignatureHeader value, body the raw request body (before any parsing),
// now the receiver's clock and tolerance its replay window (Tolerance).
func Verify(secret, header string, body []byte, now time.Time, tolerance time.Duration) error {
	var ts string
	var sigs []string
	for _, part := range strings.Split(header, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			continue
		}
		switch k {
		case "t":
			ts = v
		case "v1":
			sigs = append(sigs, v)
		}
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: %s has no t=UNIX-SECONDS", ErrNoSignature, SignatureHeader)
	}
	if len(sigs) == 0 {
		return fmt.Errorf("%w: %s has no v1=", ErrNoSignature, SignatureHeader)
	}
	if d := now.Sub(time.Unix(sec, 0)).Abs(); d > tolerance {
		return fmt.Errorf("%w: signed %s from now, more than %s", ErrStaleRequest, d.Round(time.Second), tolerance)
	}
	want := mac(secret, ts, body)
	for _, s := range sigs {
		if hmac.Equal([]byte(s), []byte(want)) {
			return nil
		}
	}
	return fmt.Errorf("%w: no v1 matches the body and the secret", ErrNoSignature)
}
