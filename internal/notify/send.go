package notify

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"
)

// Timeout is how long one attempt may take, connection to last byte.
const Timeout = 10 * time.Second

// maxResponse is how much of a receiver's answer is read (and dropped):
// enough to reuse the connection, never a receiver's whole reply.
const maxResponse = 4 << 10

// Sender posts deliveries.
type Sender struct {
	// Client sends; nil is NewClient(false): public addresses only, a
	// redirect only to the same scheme, host and port.
	Client *http.Client
	// Now is the clock: the signature's timestamp and the attempt's
	// duration.
	Now func() time.Time
}

// Result is one attempt's outcome.
type Result struct {
	Status   int // 0 when no response came
	Err      error
	Duration time.Duration
}

// OK says whether the receiver took the delivery: any 2xx.
func (r Result) OK() bool { return r.Err == nil && r.Status >= 200 && r.Status < 300 }

// CheckRedirect follows at most three redirects, each to the scheme, host
// and port of the original request: a subscription names where its events
// go, and a receiver cannot send them (with their signature) elsewhere.
func CheckRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= 3 {
		return errors.New("more than 3 redirects")
	}
	first := via[0].URL
	if req.URL.Scheme != first.Scheme || req.URL.Host != first.Host {
		return fmt.Errorf("redirect to %s://%s refused: not the subscription's %s://%s", req.URL.Scheme, req.URL.Host, first.Scheme, first.Host)
	}
	return nil
}

// Send posts body to target, signed with secret. headers are added
// (event id and type).
func (s *Sender) Send(ctx context.Context, target, contentType, secret string, body []byte, headers map[string]string) Result {
	client := s.Client
	if client == nil {
		client = NewClient(false)
	}
	start := s.Now()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return Result{Err: fmt.Errorf("request: %w", err)}
	}
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("User-Agent", "Ringfence-Webhooks/1")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	req.Header.Set(SignatureHeader, Sign(secret, start, body))
	resp, err := client.Do(req)
	if err != nil {
		return Result{Err: scrub(err), Duration: s.Now().Sub(start)}
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, maxResponse))
	resp.Body.Close()
	return Result{Status: resp.StatusCode, Duration: s.Now().Sub(start)}
}

// scrub drops the URL from a transport error: the delivery log already
// names the subscription, and a URL may carry a token in its query.
func scrub(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%s: %w", ue.Op, ue.Err)
	}
	return err
}
