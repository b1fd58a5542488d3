package trust

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// Unreachable tells the network's failures from the content's: a refused
// connection, a server answering 503, a cut-off body are the
// network's; a wrong hash, a denied target, a 404 are not.
func TestUnreachable(t *testing.T) {
	// What net/http returns for a refused connection (built here, not
	// dialled: a test must not depend on a port being free).
	refused := &url.Error{Op: "Get", URL: "http://127.0.0.1:1/tuf/targets/x", Err: &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connect: connection refused")}}
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer down.Close()
	resp, err := http.Get(down.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"connection-refused", fmt.Errorf("staging: %w", refused), true},
		{"server-503", fmt.Errorf("%w: GET %s: %s", ErrUnreachable, down.URL, resp.Status), true},
		{"tuf-fetch-503", &metadata.ErrDownloadHTTP{StatusCode: 503}, true},
		{"tuf-fetch-429", &metadata.ErrDownloadHTTP{StatusCode: 429}, true},
		{"cut-off-body", fmt.Errorf("reading: %w", io.ErrUnexpectedEOF), true},
		{"tuf-fetch-404", &metadata.ErrDownloadHTTP{StatusCode: 404}, false},
		{"denied", fmt.Errorf("acme/ipc/293.bundle: %w (halted)", ErrDenied), false},
		{"too-long", fmt.Errorf("%w (1000 bytes signed)", ErrTooLong), false},
		{"wrong-hash", errors.New("sha256 00, signed 11: the bytes are not the ones the vendor signed"), false},
		{"expired", ErrExpired, false},
		{"nil", nil, false},
	}
	for _, tc := range tests {
		if got := Unreachable(tc.err); got != tc.want {
			t.Errorf("%s: Unreachable(%v) = %v, want %v", tc.name, tc.err, got, tc.want)
		}
	}
}
