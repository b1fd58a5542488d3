package cli

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ringfence/ringfence/internal/content"
	"github.com/ringfence/ringfence/internal/protocol"
)

// defaultServer is where the admin commands look for the control plane
// when neither --server nor RINGFENCE_SERVER says otherwise.
const defaultServer = "http://127.0.0.1:8080"

// maxResponse caps what the CLI reads from the server: a page of 10,000
// devices or audit entries is a few MiB.
const maxResponse = 64 << 20

// adminFlags are the root's persistent flags that every admin command
// reads. The token is resolved at use, never shown as a flag default, so
// that --help does not print a secret.
type adminFlags struct {
	server string
	token  string
	json   bool
	ca     string
}

func (f *adminFlags) register(c *cobra.Command) {
	pf := c.PersistentFlags()
	pf.StringVar(&f.server, "server", "", "control plane URL (default $RINGFENCE_SERVER, else "+defaultServer+")")
	pf.StringVar(&f.token, "token", "", "API token (default $RINGFENCE_TOKEN)")
	pf.BoolVar(&f.json, "json", false, "print JSON for machines (the server's JSON for admin commands)")
	pf.StringVar(&f.ca, "ca", "", "PEM CA certificates to verify the server's TLS certificate with, instead of the system's roots (default $RINGFENCE_CA)")
}

// client builds an API client from the flags and the environment; a
// missing token or a malformed URL is a usage error.
func (f *adminFlags) client() (*client, error) {
	server := f.server
	if server == "" {
		server = os.Getenv("RINGFENCE_SERVER")
	}
	if server == "" {
		server = defaultServer
	}
	token := f.token
	if token == "" {
		token = os.Getenv("RINGFENCE_TOKEN")
	}
	u, err := url.Parse(strings.TrimRight(server, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, usage(fmt.Errorf("--server %q: want a URL such as %s", server, defaultServer))
	}
	if token == "" {
		return nil, usage(errors.New("no API token: pass --token or set RINGFENCE_TOKEN (ringfence server --dev writes tokens to <data>/dev-credentials.json)"))
	}
	ca := f.ca
	if ca == "" {
		ca = os.Getenv("RINGFENCE_CA")
	}
	var caPEM []byte
	if ca != "" {
		if caPEM, err = os.ReadFile(ca); err != nil {
			return nil, usage(fmt.Errorf("--ca: %w", err))
		}
	}
	hc, err := protocol.HTTPClient(caPEM, 2*time.Minute)
	if err != nil {
		return nil, usage(fmt.Errorf("--ca %s: %w", ca, err))
	}
	return &client{base: u.String(), token: token, http: hc}, nil
}

// client talks to the admin API.
type client struct {
	base  string
	token string
	http  *http.Client
}

// apiError is a refusal the server explained: its body is
// {"error": ..., "detail": ...}, and for a rejected bundle "findings".
type apiError struct {
	Status   int
	Msg      string           `json:"error"`
	Detail   string           `json:"detail"`
	Findings content.Findings `json:"findings"`
	body     []byte
}

func (e *apiError) Error() string {
	msg := e.Msg
	if msg == "" {
		msg = fmt.Sprintf("HTTP %d %s", e.Status, http.StatusText(e.Status))
	}
	if e.Detail == "" {
		return msg
	}
	return msg + ": " + e.Detail
}

// exitCode maps a refusal to an exit status: a request the server read
// and refused (400, 403, 404, 409, 413, 422) is rejected (1); a missing or
// bad credential is the caller's setup (2); a failing server (5xx) is an
// I/O error (2).
func (e *apiError) exitCode() int {
	if e.Status >= 400 && e.Status < 500 && e.Status != http.StatusUnauthorized {
		return ExitRejected
	}
	return ExitUsage
}

// exit turns an error from the client into one carrying its exit status.
func exit(err error) error {
	if err == nil {
		return nil
	}
	var ae *apiError
	if errors.As(err, &ae) {
		if ae.Status == http.StatusUnauthorized {
			return &exitError{code: ExitUsage, err: fmt.Errorf("%w (check --token or RINGFENCE_TOKEN)", ae)}
		}
		return &exitError{code: ae.exitCode(), err: ae}
	}
	var ee *exitError
	if errors.As(err, &ee) {
		return err
	}
	return usage(err)
}

// do sends a request and returns the response body of a 2xx answer. body,
// when not nil, is sent as JSON unless it is a []byte (sent as is with
// contentType). Other statuses come back as *apiError; a server that
// cannot be reached as an error naming it.
func (c *client) do(ctx context.Context, method, path string, query url.Values, body any, contentType string) ([]byte, http.Header, error) {
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			return nil, nil, fmt.Errorf("encode request: %w", err)
		}
		rd, contentType = bytes.NewReader(j), "application/json"
	}
	u := c.base + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, nil, fmt.Errorf("%s %s: %w", method, u, err)
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Accept", "application/json")
	if rd != nil {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		var cve *tls.CertificateVerificationError
		if errors.As(err, &cve) {
			return nil, nil, fmt.Errorf("cannot trust the server at %s: %v (a private CA? give its certificate with --ca or RINGFENCE_CA)", c.base, err)
		}
		return nil, nil, fmt.Errorf("cannot reach the server at %s: %v (is it running? set --server or RINGFENCE_SERVER)", c.base, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse+1))
	if err != nil {
		return nil, nil, fmt.Errorf("%s %s: read response: %w", method, path, err)
	}
	if len(raw) > maxResponse {
		return nil, nil, fmt.Errorf("%s %s: response larger than %d MiB", method, path, maxResponse>>20)
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return raw, resp.Header, nil
	}
	ae := &apiError{Status: resp.StatusCode, body: raw}
	if json.Unmarshal(raw, ae) != nil || ae.Msg == "" {
		// Not our server's error shape (a proxy, or another service).
		ae.Msg, ae.Detail, ae.Findings = "", strings.TrimSpace(string(raw[:min(len(raw), 512)])), nil
	}
	return nil, resp.Header, ae
}

// call sends body as JSON and decodes the answer into out, returning the
// raw body for --json.
func (c *client) call(ctx context.Context, method, path string, query url.Values, body, out any) ([]byte, error) {
	raw, _, err := c.do(ctx, method, path, query, body, "")
	if err != nil {
		return nil, err
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return nil, fmt.Errorf("%s %s: unexpected response from the server: %v", method, path, err)
		}
	}
	return raw, nil
}

// writeRawJSON prints the server's JSON, indented.
func writeRawJSON(w io.Writer, raw []byte) error {
	var buf bytes.Buffer
	if err := json.Indent(&buf, raw, "", "  "); err != nil {
		buf.Reset()
		buf.Write(raw)
	}
	if !bytes.HasSuffix(buf.Bytes(), []byte("\n")) {
		buf.WriteByte('\n')
	}
	if _, err := w.Write(buf.Bytes()); err != nil {
		return usage(err)
	}
	return nil
}
