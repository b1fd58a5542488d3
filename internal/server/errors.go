package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/ringfence/ringfence/internal/protocol"
	"github.com/ringfence/ringfence/internal/store"
)

// HTTPError is an error a client may see: Code is the HTTP status, Msg a
// short stable text, Detail what was wrong and where. Err is internal and
// only logged.
type HTTPError struct {
	Code       int
	Msg        string
	Detail     string
	Err        error
	RetryAfter int // seconds, for 503 and 429
	// Quota names the quota a 429 went over (protocol.QuotaHeader).
	Quota string
}

func (e *HTTPError) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%d %s: %s: %v", e.Code, e.Msg, e.Detail, e.Err)
	}
	return fmt.Sprintf("%d %s: %s", e.Code, e.Msg, e.Detail)
}

func (e *HTTPError) Unwrap() error { return e.Err }

func badRequest(format string, args ...any) *HTTPError {
	return &HTTPError{Code: http.StatusBadRequest, Msg: "bad request", Detail: fmt.Sprintf(format, args...)}
}

func notFound(format string, args ...any) *HTTPError {
	return &HTTPError{Code: http.StatusNotFound, Msg: "not found", Detail: fmt.Sprintf(format, args...)}
}

func forbidden(format string, args ...any) *HTTPError {
	return &HTTPError{Code: http.StatusForbidden, Msg: "forbidden", Detail: fmt.Sprintf(format, args...)}
}

func conflict(format string, args ...any) *HTTPError {
	return &HTTPError{Code: http.StatusConflict, Msg: "conflict", Detail: fmt.Sprintf(format, args...)}
}

var errUnauthorized = &HTTPError{Code: http.StatusUnauthorized, Msg: "unauthorized", Detail: "missing, unknown or revoked credential"}

// storeError maps a store error to what the client may see.
// asStoreError is storeError for an error that may be nil.
func asStoreError(what string, err error) error {
	if err == nil {
		return nil
	}
	return storeError(what, err)
}

func storeError(what string, err error) *HTTPError {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return notFound("%s does not exist", what)
	case errors.Is(err, store.ErrConflict):
		return conflict("%s already exists", what)
	case errors.Is(err, store.ErrStale):
		return conflict("%s was changed concurrently; retry", what)
	case errors.Is(err, store.ErrUnavailable):
		return unavailable(err)
	}
	return &HTTPError{Code: http.StatusInternalServerError, Msg: "internal error", Detail: "the server could not complete the request", Err: err}
}

func unavailable(err error) *HTTPError {
	// A spread of retry times keeps a fleet from returning in step.
	return &HTTPError{Code: http.StatusServiceUnavailable, Msg: "unavailable", Detail: "the store is unreachable; keep queued events and retry later",
		Err: err, RetryAfter: 15 + rand.IntN(46)}
}

// handler is an http.Handler that returns its error; serve renders it.
type handler func(w http.ResponseWriter, r *http.Request) error

func (s *Server) serve(h handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if p := recover(); p != nil {
				s.log.Error("panic in handler", "path", r.URL.Path, "panic", p)
				writeError(w, &HTTPError{Code: http.StatusInternalServerError, Msg: "internal error", Detail: "the server could not complete the request"})
			}
		}()
		err := h(w, r)
		if err == nil {
			return
		}
		var he *HTTPError
		if !errors.As(err, &he) {
			he = storeError("resource", err)
		}
		if he.Code >= 500 {
			s.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "status", he.Code, "err", he.Err)
		} else {
			s.log.Debug("request refused", "method", r.Method, "path", r.URL.Path, "status", he.Code, "detail", he.Detail)
		}
		writeError(w, he)
	})
}

func writeError(w http.ResponseWriter, he *HTTPError) {
	if he.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(he.RetryAfter))
	}
	if he.Quota != "" {
		w.Header().Set(protocol.QuotaHeader, he.Quota)
	}
	writeJSON(w, he.Code, map[string]string{"error": he.Msg, "detail": he.Detail})
}

// writeCheckin writes a check-in's answer, encoded by hand
// (appendCheckinResponse) into a pooled buffer.
func writeCheckin(w http.ResponseWriter, resp *CheckinResponse) {
	bp := answers.Get().(*[]byte)
	b := appendCheckinResponse((*bp)[:0], resp)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	if _, err := w.Write(b); err != nil {
		slog.Debug("write response", "err", err)
	}
	if cap(b) <= 64<<10 { // a rare large answer is not kept
		*bp = b
		answers.Put(bp)
	}
}

var answers = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	if err := json.NewEncoder(w).Encode(v); err != nil {
		slog.Debug("write response", "err", err)
	}
}

// Request body caps for JSON: a check-in carries up to a thousand events;
// an admin request is a handful of fields. (Uploads have their own caps:
// content.MaxSourceSize for bundles, maxAgentBuild for agent builds.)
const (
	maxCheckinBody = 1 << 20
	maxAdminJSON   = 64 << 10
)

// decodeJSON reads a JSON body strictly: size-capped, unknown fields
// refused, one value only. Errors name the field or offset.
func decodeJSON(w http.ResponseWriter, r *http.Request, limit int64, v any) error {
	r.Body = http.MaxBytesReader(w, r.Body, limit)
	return decodeFrom(json.NewDecoder(r.Body), limit, v)
}

// bodies are buffers for request bodies read whole.
var bodies = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// decodeJSONFast is decodeJSON for a body that fast, a parser of its
// common form, may read instead; where fast declines, encoding/json
// decodes it and says what is wrong.
func decodeJSONFast(w http.ResponseWriter, r *http.Request, limit int64, v any, fast func([]byte) bool) error {
	buf := bodies.Get().(*bytes.Buffer)
	defer func() {
		if buf.Cap() <= 64<<10 { // a rare large body is not kept
			buf.Reset()
			bodies.Put(buf)
		}
	}()
	buf.Reset()
	if _, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, limit)); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return &HTTPError{Code: http.StatusRequestEntityTooLarge, Msg: "request too large", Detail: fmt.Sprintf("body is larger than %d bytes", limit)}
		}
		return badRequest("reading the body: %v", err)
	}
	if fast(buf.Bytes()) {
		return nil
	}
	return decodeFrom(json.NewDecoder(bytes.NewReader(buf.Bytes())), limit, v)
}

func decodeFrom(dec *json.Decoder, limit int64, v any) error {
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		var pe *time.ParseError
		switch {
		case errors.As(err, &mbe):
			return &HTTPError{Code: http.StatusRequestEntityTooLarge, Msg: "request too large", Detail: fmt.Sprintf("body is larger than %d bytes", limit)}
		case errors.Is(err, io.EOF):
			return badRequest("empty body: want a JSON object")
		case errors.As(err, &se):
			return badRequest("malformed JSON at byte offset %d: %v", se.Offset, err)
		case errors.As(err, &te) && te.Field == "":
			return badRequest("body: want a JSON object, got JSON %s", te.Value)
		case errors.As(err, &te):
			return badRequest("field %q: want %s, got JSON %s (byte offset %d)", te.Field, te.Type, te.Value, te.Offset)
		case errors.As(err, &pe):
			// A time field: in a check-in, events[].time.
			return badRequest("time: %q is not an RFC 3339 time such as 2026-01-02T15:04:05Z (before byte offset %d)", pe.Value, dec.InputOffset())
		}
		return badRequest("malformed JSON body: %v", err)
	}
	if dec.More() {
		return badRequest("trailing data after the JSON body")
	}
	return nil
}

func jsonMarshal(v any) ([]byte, error) { return json.Marshal(v) }
