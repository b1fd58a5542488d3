package server_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"
)

// specRouter finds the OpenAPI description's operation for a request.
var specRouter = sync.OnceValues(func() (routers.Router, error) {
	doc, err := openapi3.NewLoader().LoadFromFile(openAPIPath)
	if err != nil {
		return nil, err
	}
	doc.Servers = nil // any host: the tests' servers listen where they can
	return legacy.NewRouter(doc)
})

// specMismatches collects what the API tests sent and got that the
// OpenAPI description does not allow, by operation.
var specMismatches sync.Map // string -> error

// checkAgainstSpec validates one exchange of an API test: the response of
// every described operation, and the request of those answered 2xx (the
// tests send bad requests on purpose; those must be answered 4xx, which
// their own assertions check).
func checkAgainstSpec(req *http.Request, reqBody []byte, resp *http.Response, respBody []byte) {
	router, err := specRouter()
	if err != nil {
		specMismatches.Store("load", err)
		return
	}
	route, params, err := router.FindRoute(req)
	if err != nil {
		return // not an API operation (console, TUF, metrics)
	}
	opts := &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, IncludeResponseStatus: true, MultiError: true}
	r2 := req.Clone(context.Background())
	r2.Body = io.NopCloser(bytes.NewReader(reqBody))
	in := &openapi3filter.RequestValidationInput{Request: r2, PathParams: params, Route: route, Options: opts}
	key := req.Method + " " + route.Path
	if resp.StatusCode/100 == 2 {
		if err := openapi3filter.ValidateRequest(context.Background(), in); err != nil {
			specMismatches.LoadOrStore(key+" request", fmt.Errorf("%s: %w", req.URL.Path, err))
		}
	}
	out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: resp.StatusCode, Header: resp.Header,
		Body: io.NopCloser(bytes.NewReader(respBody)), Options: opts}
	if err := openapi3filter.ValidateResponse(context.Background(), out); err != nil {
		specMismatches.LoadOrStore(fmt.Sprintf("%s response %d", key, resp.StatusCode), fmt.Errorf("%s: %w", req.URL.Path, err))
	}
}

// specTransport checks every exchange of the API tests against the
// description as it passes.
type specTransport struct{ next http.RoundTripper }

func (s specTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	var body []byte
	if req.Body != nil {
		b, err := io.ReadAll(req.Body)
		if err != nil {
			return nil, err
		}
		req.Body.Close()
		body = b
		req.Body = io.NopCloser(bytes.NewReader(b))
	}
	resp, err := s.next.RoundTrip(req)
	if err != nil {
		return resp, err
	}
	rb, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(rb))
	checkAgainstSpec(req, body, resp, rb)
	return resp, nil
}

// reportSpecMismatches prints what checkAgainstSpec found, once the
// package's tests have run; true: something was found.
func reportSpecMismatches() bool {
	var lines []string
	specMismatches.Range(func(k, v any) bool {
		lines = append(lines, fmt.Sprintf("%s: %v", k, v))
		return true
	})
	if len(lines) == 0 {
		return false
	}
	sort.Strings(lines)
	fmt.Fprintf(os.Stderr, "the API tests sent or got %d kinds of exchange the OpenAPI description does not allow:\n%s\n", len(lines), strings.Join(lines, "\n"))
	return true
}
