package server_test

// The OpenAPI description (api/openapi.yaml) is checked against the code,
// so that it cannot drift: every route the server registers is described
// and nothing else is, every operation documents its errors with the
// shared Error schema, and the schemas of the device protocol and of
// releases have exactly the JSON fields of the Go types the server decodes
// and encodes.

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/ringfence/ringfence/internal/content"
	"github.com/ringfence/ringfence/internal/notify"
	"github.com/ringfence/ringfence/internal/protocol"
	"github.com/ringfence/ringfence/internal/rollout"
	"github.com/ringfence/ringfence/internal/server"
	"github.com/ringfence/ringfence/internal/store"
	"github.com/ringfence/ringfence/internal/store/sqlstore"
	"github.com/ringfence/ringfence/internal/trust"
)

const openAPIPath = "../../api/openapi.yaml"

type oaDoc struct {
	OpenAPI    string                          `yaml:"openapi"`
	Info       map[string]any                  `yaml:"info"`
	Paths      map[string]map[string]yaml.Node `yaml:"paths"`
	Security   []map[string][]string           `yaml:"security"`
	Components struct {
		Schemas         map[string]*oaSchema   `yaml:"schemas"`
		Responses       map[string]*oaResponse `yaml:"responses"`
		Parameters      map[string]*oaParam    `yaml:"parameters"`
		Headers         map[string]*oaHeader   `yaml:"headers"`
		SecuritySchemes map[string]*oaSecurity `yaml:"securitySchemes"`
	} `yaml:"components"`
}

type oaSchema struct {
	Ref                  string               `yaml:"$ref"`
	Type                 string               `yaml:"type"`
	Format               string               `yaml:"format"`
	Properties           map[string]*oaSchema `yaml:"properties"`
	Required             []string             `yaml:"required"`
	Items                *oaSchema            `yaml:"items"`
	AllOf                []*oaSchema          `yaml:"allOf"`
	Enum                 []string             `yaml:"enum"`
	AdditionalProperties any                  `yaml:"additionalProperties"`
}

type oaHeader struct {
	Ref    string    `yaml:"$ref"`
	Schema *oaSchema `yaml:"schema"`
}

type oaMedia struct {
	Schema *oaSchema `yaml:"schema"`
}

type oaResponse struct {
	Ref         string               `yaml:"$ref"`
	Description string               `yaml:"description"`
	Headers     map[string]*oaHeader `yaml:"headers"`
	Content     map[string]oaMedia   `yaml:"content"`
}

type oaParam struct {
	Ref      string `yaml:"$ref"`
	Name     string `yaml:"name"`
	In       string `yaml:"in"`
	Required bool   `yaml:"required"`
}

type oaSecurity struct {
	Type         string `yaml:"type"`
	Scheme       string `yaml:"scheme"`
	BearerFormat string `yaml:"bearerFormat"`
}

type oaOperation struct {
	OperationID string                 `yaml:"operationId"`
	Parameters  []*oaParam             `yaml:"parameters"`
	RequestBody map[string]any         `yaml:"requestBody"`
	Responses   map[string]*oaResponse `yaml:"responses"`
	// nil: the document's default applies; empty: no authentication.
	Security *[]map[string][]string `yaml:"security"`
}

var oaMethods = map[string]string{"get": "GET", "put": "PUT", "post": "POST", "delete": "DELETE", "patch": "PATCH", "head": "HEAD", "options": "OPTIONS"}

// loadOpenAPI parses the document and its operations, keyed "METHOD /path".
func loadOpenAPI(t *testing.T) (*oaDoc, map[string]*oaOperation, map[string]any) {
	t.Helper()
	b, err := os.ReadFile(openAPIPath)
	if err != nil {
		t.Fatalf("read the OpenAPI description: %v", err)
	}
	var doc oaDoc
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatalf("%s: %v", openAPIPath, err)
	}
	var raw map[string]any
	if err := yaml.Unmarshal(b, &raw); err != nil {
		t.Fatalf("%s: %v", openAPIPath, err)
	}
	ops := map[string]*oaOperation{}
	for path, item := range doc.Paths {
		for key, node := range item {
			m, ok := oaMethods[key]
			if !ok {
				continue // parameters, summary, description
			}
			var op oaOperation
			if err := node.Decode(&op); err != nil {
				t.Fatalf("%s %s: %v", key, path, err)
			}
			ops[m+" "+path] = &op
		}
	}
	return &doc, ops, raw
}

var (
	// mux.Handle("GET /v1/x", ...) and mux.HandleFunc("GET /v1/x", ...).
	routeCall    = regexp.MustCompile(`\bmux\.Handle(?:Func)?\(`)
	routeLiteral = regexp.MustCompile(`\bmux\.Handle(?:Func)?\(\s*"([^"]*)"`)
	pathWildcard = regexp.MustCompile(`\{([A-Za-z_][A-Za-z0-9_]*)(?:\.\.\.)?\}`)
)

// normalizeRoute writes a route the way both sides can be compared:
// "{name...}" as "{name}", and the end anchor "{$}" dropped.
func normalizeRoute(method, path string) string {
	path = strings.TrimSuffix(path, "{$}")
	return strings.ToUpper(method) + " " + pathWildcard.ReplaceAllString(path, "{$1}")
}

// registeredRoutes reads the route patterns from the package's Go sources.
// Every mux.Handle call must name its pattern as a string literal with a
// method, so that a route cannot hide from this test.
func registeredRoutes(t *testing.T) map[string]string {
	t.Helper()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	routes := map[string]string{}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(strings.TrimSpace(line), "//") || !routeCall.MatchString(line) {
				continue
			}
			where := f + ":" + strconv.Itoa(i+1)
			m := routeLiteral.FindStringSubmatch(line)
			if m == nil {
				t.Errorf("%s: route registered without a string-literal pattern; this test cannot see it: %s", where, strings.TrimSpace(line))
				continue
			}
			if m[1] == "/" {
				continue // the JSON catch-all for 404 and 405
			}
			if m[1] == "/console/" {
				// The web console: HTML pages and form posts with a
				// session cookie, not the JSON API this document
				// describes (docs/api.md, "Web console").
				continue
			}
			method, path, ok := strings.Cut(m[1], " ")
			if !ok || !strings.HasPrefix(path, "/") {
				t.Errorf("%s: route %q has no METHOD; register it as \"METHOD /path\"", where, m[1])
				continue
			}
			key := normalizeRoute(method, path)
			if prev, dup := routes[key]; dup {
				t.Errorf("%s: route %s registered twice (also %s)", where, key, prev)
			}
			routes[key] = where
		}
	}
	if len(routes) == 0 {
		t.Fatal("found no routes in the package sources")
	}
	return routes
}

func TestOpenAPIDocument(t *testing.T) {
	doc, ops, _ := loadOpenAPI(t)
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Errorf("openapi: %q, want 3.x", doc.OpenAPI)
	}
	for _, k := range []string{"title", "version"} {
		if s, _ := doc.Info[k].(string); s == "" {
			t.Errorf("info.%s is missing", k)
		}
	}
	if len(doc.Paths) == 0 || len(ops) == 0 {
		t.Fatal("paths: none described")
	}
	for name, want := range map[string]string{"deviceCredential": "DEVICE_ID.SECRET", "apiToken": ""} {
		s := doc.Components.SecuritySchemes[name]
		if s == nil || s.Type != "http" || !strings.EqualFold(s.Scheme, "bearer") || (want != "" && s.BearerFormat != want) {
			t.Errorf("securitySchemes.%s: want an http bearer scheme (format %q), got %+v", name, want, s)
		}
	}
}

func TestOpenAPIDescribesEveryRoute(t *testing.T) {
	_, ops, _ := loadOpenAPI(t)
	routes := registeredRoutes(t)
	var missing, extra []string
	for r, where := range routes {
		if _, ok := ops[r]; !ok {
			missing = append(missing, r+" ("+where+")")
		}
	}
	for key := range ops {
		method, path, _ := strings.Cut(key, " ")
		if _, ok := routes[normalizeRoute(method, path)]; !ok {
			extra = append(extra, key)
		}
	}
	sort.Strings(missing)
	sort.Strings(extra)
	for _, r := range missing {
		t.Errorf("route %s is registered but not described in %s", r, openAPIPath)
	}
	for _, r := range extra {
		t.Errorf("%s describes %s, which the server does not register", openAPIPath, r)
	}
}

// TestOpenAPIRoutesReachHandlers sends each described operation to the
// real handler: none may fall through to the catch-all (404 "no such
// endpoint" or 405), so the spec's paths and methods are the routed ones.
func TestOpenAPIRoutesReachHandlers(t *testing.T) {
	_, ops, _ := loadOpenAPI(t)
	ctx := context.Background()
	st, err := sqlstore.Open(ctx, "", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	srv := server.New(server.Config{}, st, time.Now, slog.New(slog.NewTextHandler(io.Discard, nil)))
	h := srv.Handler()
	for key := range ops {
		method, path, _ := strings.Cut(key, " ")
		url := pathWildcard.ReplaceAllStringFunc(path, func(p string) string {
			if p == "{version}" {
				return "1"
			}
			return "x1"
		})
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(method, url, strings.NewReader("")))
		body := rec.Body.String()
		if rec.Code == http.StatusMethodNotAllowed || (rec.Code == http.StatusNotFound && strings.Contains(body, "no such endpoint")) {
			t.Errorf("%s (as %s %s) is not routed: %d %s", key, method, url, rec.Code, strings.TrimSpace(body))
		}
	}
}

func isHealth(key string) bool { return key == "GET /healthz" || key == "GET /readyz" }

func TestOpenAPIOperations(t *testing.T) {
	doc, ops, _ := loadOpenAPI(t)
	resolveResp := func(r *oaResponse) *oaResponse {
		for r != nil && r.Ref != "" {
			r = doc.Components.Responses[strings.TrimPrefix(r.Ref, "#/components/responses/")]
		}
		return r
	}
	ids := map[string]string{}
	for key, op := range ops {
		if op.OperationID == "" {
			t.Errorf("%s: no operationId", key)
		} else if prev, dup := ids[op.OperationID]; dup {
			t.Errorf("%s: operationId %q also used by %s", key, op.OperationID, prev)
		} else {
			ids[op.OperationID] = key
		}

		// Path parameters: declared exactly as the template names them.
		_, path, _ := strings.Cut(key, " ")
		var inPath, declared []string
		for _, m := range pathWildcard.FindAllStringSubmatch(path, -1) {
			inPath = append(inPath, m[1])
		}
		for _, p := range op.Parameters {
			for p != nil && p.Ref != "" {
				p = doc.Components.Parameters[strings.TrimPrefix(p.Ref, "#/components/parameters/")]
			}
			if p == nil {
				t.Errorf("%s: a parameter $ref does not resolve", key)
				continue
			}
			if p.In == "path" {
				if !p.Required {
					t.Errorf("%s: path parameter %s must be required", key, p.Name)
				}
				declared = append(declared, p.Name)
			}
		}
		slices.Sort(inPath)
		slices.Sort(declared)
		if !slices.Equal(inPath, declared) {
			t.Errorf("%s: path parameters %v, declared %v", key, inPath, declared)
		}

		// Security: devices use their credential, admin routes API tokens,
		// enrolment and health nothing.
		sec := doc.Security
		if op.Security != nil {
			sec = *op.Security
		}
		var schemes []string
		for _, req := range sec {
			for name := range req {
				schemes = append(schemes, name)
			}
		}
		slices.Sort(schemes)
		var want []string
		switch {
		case isHealth(key) || key == "POST /v1/enroll" || strings.HasPrefix(key, "GET /tuf/"):
		case key == "POST /v1/checkin" || strings.HasPrefix(key, "GET /v1/artifacts/"):
			want = []string{"deviceCredential"}
		default:
			want = []string{"apiToken"}
		}
		if !slices.Equal(schemes, want) {
			t.Errorf("%s: security %v, want %v", key, schemes, want)
		}

		// Responses: a success, and errors in the shared Error shape.
		has2xx := false
		for code, r := range op.Responses {
			if strings.HasPrefix(code, "2") {
				has2xx = true
			}
			rr := resolveResp(r)
			if rr == nil {
				t.Errorf("%s: response %s: $ref %q does not resolve", key, code, r.Ref)
				continue
			}
			if rr.Description == "" {
				t.Errorf("%s: response %s has no description", key, code)
			}
			if code[0] != '4' && code[0] != '5' {
				continue
			}
			media, ok := rr.Content["application/json"]
			if !ok || !refersToError(doc, media.Schema, 0) {
				t.Errorf("%s: response %s does not use #/components/schemas/Error", key, code)
			}
			if code == "503" && !hasHeader(doc, rr, "Retry-After") {
				t.Errorf("%s: response 503 has no Retry-After header", key)
			}
		}
		if !has2xx {
			t.Errorf("%s: no 2xx response", key)
		}
		if isHealth(key) {
			continue
		}
		// TUF metadata and targets are public by design: clients verify
		// them with the root they hold, not with a credential.
		if op.Responses["401"] == nil && !strings.HasPrefix(key, "GET /tuf/") {
			t.Errorf("%s: 401 is not documented", key)
		}
		// A body can be malformed or too large; a path can name something
		// the caller may not touch or that does not exist.
		if op.RequestBody != nil && (op.Responses["400"] == nil || op.Responses["413"] == nil) {
			t.Errorf("%s: takes a body but does not document both 400 and 413", key)
		}
		if len(inPath) > 0 && op.Responses["403"] == nil && op.Responses["404"] == nil {
			t.Errorf("%s: has path parameters but documents neither 403 nor 404", key)
		}
		if op.Responses["503"] == nil {
			t.Errorf("%s: 503 is not documented", key)
		}
	}
	for _, key := range []string{"POST /v1/enroll", "POST /v1/checkin"} {
		if op := ops[key]; op == nil || op.Responses["503"] == nil || !hasHeader(doc, resolveResp(op.Responses["503"]), "Retry-After") {
			t.Errorf("%s: must document 503 with Retry-After", key)
		}
	}
}

func refersToError(doc *oaDoc, s *oaSchema, depth int) bool {
	if s == nil || depth > 8 {
		return false
	}
	if s.Ref == "#/components/schemas/Error" {
		return true
	}
	if s.Ref != "" {
		return refersToError(doc, doc.Components.Schemas[strings.TrimPrefix(s.Ref, "#/components/schemas/")], depth+1)
	}
	for _, a := range s.AllOf {
		if refersToError(doc, a, depth+1) {
			return true
		}
	}
	return false
}

func hasHeader(doc *oaDoc, r *oaResponse, name string) bool {
	if r == nil {
		return false
	}
	for k, h := range r.Headers {
		if !strings.EqualFold(k, name) {
			continue
		}
		if h.Ref != "" {
			h = doc.Components.Headers[strings.TrimPrefix(h.Ref, "#/components/headers/")]
		}
		return h != nil && h.Schema != nil
	}
	return false
}

// TestOpenAPIRefsResolve: every $ref in the document points at something.
func TestOpenAPIRefsResolve(t *testing.T) {
	_, _, raw := loadOpenAPI(t)
	var walk func(v any, at string)
	walk = func(v any, at string) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				if k == "$ref" {
					ref, _ := x.(string)
					if !resolvesIn(raw, ref) {
						t.Errorf("%s: $ref %q does not resolve", at, ref)
					}
					continue
				}
				walk(x, at+"/"+k)
			}
		case []any:
			for i, x := range v {
				walk(x, at+"/"+strconv.Itoa(i))
			}
		}
	}
	walk(raw, "")
}

func resolvesIn(raw map[string]any, ref string) bool {
	if !strings.HasPrefix(ref, "#/") {
		return false
	}
	var cur any = raw
	for _, part := range strings.Split(strings.TrimPrefix(ref, "#/"), "/") {
		m, ok := cur.(map[string]any)
		if !ok {
			return false
		}
		if cur, ok = m[part]; !ok {
			return false
		}
	}
	return cur != nil
}

// TestOpenAPIDeviceProtocolMatchesCode: the device protocol's schemas have
// exactly the JSON fields of the Go types, with matching types; in answers,
// a field is required exactly when the server always sends it.
func TestOpenAPIDeviceProtocolMatchesCode(t *testing.T) {
	doc, _, _ := loadOpenAPI(t)
	schemaOf := map[reflect.Type]string{
		reflect.TypeFor[server.CheckinRequest]():  "CheckinRequest",
		reflect.TypeFor[server.ChannelReport]():   "ChannelReport",
		reflect.TypeFor[server.EventReport]():     "EventReport",
		reflect.TypeFor[server.CheckinResponse](): "CheckinResponse",
		reflect.TypeFor[server.ChannelDesired]():  "ChannelDesired",
		reflect.TypeFor[server.Artifact]():        "Artifact",
	}
	requests := map[string]bool{"CheckinRequest": true, "ChannelReport": true, "EventReport": true}
	matchSchemas(t, doc, schemaOf, requests)
}

// TestOpenAPIReleaseTypesMatchCode: the same for releases, their status,
// kill switches and budgets. Plans (and Budget) are requests too, decoded
// strictly, so their schemas refuse unknown fields rather than list what
// the server always sends.
func TestOpenAPIReleaseTypesMatchCode(t *testing.T) {
	doc, _, _ := loadOpenAPI(t)
	schemaOf := map[reflect.Type]string{
		reflect.TypeFor[server.ReleaseReport](): "Release",
		reflect.TypeFor[server.Figure]():        "Figure",
		reflect.TypeFor[store.Approval]():       "Approval",
		reflect.TypeFor[rollout.Plan]():         "Plan",
		reflect.TypeFor[rollout.Wave]():         "Wave",
		reflect.TypeFor[rollout.Detect]():       "Detect",
		reflect.TypeFor[rollout.GateSpec]():     "GateSpec",
		reflect.TypeFor[server.ReleaseStatus](): "ReleaseStatus",
		reflect.TypeFor[server.WaveStatus]():    "WaveStatus",
		reflect.TypeFor[rollout.GateResult]():   "GateResult",
		reflect.TypeFor[store.KillSwitch]():     "KillSwitch",
		reflect.TypeFor[server.Budget]():        "Budget",
		reflect.TypeFor[server.WebhookInfo]():   "Webhook",
		reflect.TypeFor[server.DeliveryInfo]():  "WebhookDelivery",
		reflect.TypeFor[server.AttemptInfo]():   "WebhookAttempt",
		reflect.TypeFor[rollout.ReleaseState](): "ReleaseState",
		reflect.TypeFor[rollout.Lane]():         "Lane",
		reflect.TypeFor[rollout.Metric]():       "Metric",
	}
	requests := map[string]bool{"Plan": true, "Wave": true, "Detect": true, "GateSpec": true, "Budget": true, "Webhook": true}
	matchSchemas(t, doc, schemaOf, requests)
}

// TestOpenAPISigningTypesMatchCode: the same for publishing and signing.
func TestOpenAPISigningTypesMatchCode(t *testing.T) {
	doc, _, _ := loadOpenAPI(t)
	schemaOf := map[reflect.Type]string{
		reflect.TypeFor[server.PublishResult](): "PublishResult",
		reflect.TypeFor[content.Finding]():      "Finding",
		reflect.TypeFor[trust.Request]():        "SigningRequest",
		reflect.TypeFor[trust.RoleRequest]():    "RoleRequest",
		reflect.TypeFor[trust.TargetInfo]():     "TargetInfo",
		reflect.TypeFor[server.SigningResult](): "SigningResult",
		reflect.TypeFor[trust.RoleStatus]():     "RoleStatus",
	}
	matchSchemas(t, doc, schemaOf, map[string]bool{"SigningRequest": true, "RoleRequest": true, "TargetInfo": true})
}

// matchSchemas checks each struct type of schemaOf against its schema; the
// other types of schemaOf are only where properties must $ref them.
func matchSchemas(t *testing.T, doc *oaDoc, schemaOf map[reflect.Type]string, requests map[string]bool) {
	t.Helper()
	timeType := reflect.TypeFor[time.Time]()
	for typ, name := range schemaOf {
		if typ.Kind() != reflect.Struct {
			if doc.Components.Schemas[name] == nil {
				t.Errorf("components.schemas.%s is missing (%s)", name, typ)
			}
			continue
		}
		s := doc.Components.Schemas[name]
		if s == nil {
			t.Errorf("components.schemas.%s is missing (%s)", name, typ)
			continue
		}
		if s.Type != "object" {
			t.Errorf("%s: type %q, want object", name, s.Type)
		}
		fields := map[string]reflect.StructField{}
		var always []string
		for i := 0; i < typ.NumField(); i++ {
			f := typ.Field(i)
			if !f.IsExported() {
				continue
			}
			tag, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
			if tag == "-" {
				continue
			}
			if tag == "" {
				tag = f.Name
			}
			fields[tag] = f
			if !slices.Contains(strings.Split(opts, ","), "omitempty") {
				always = append(always, tag)
			}
		}
		var inCode, inSpec []string
		for k := range fields {
			inCode = append(inCode, k)
		}
		for k := range s.Properties {
			inSpec = append(inSpec, k)
		}
		slices.Sort(inCode)
		slices.Sort(inSpec)
		if !slices.Equal(inCode, inSpec) {
			t.Errorf("%s: properties %v, but %s has JSON fields %v", name, inSpec, typ, inCode)
		}
		for _, r := range s.Required {
			if _, ok := fields[r]; !ok {
				t.Errorf("%s: required %q is no field of %s", name, r, typ)
			}
		}
		if requests[name] {
			// The server refuses unknown fields; the schema says so.
			if b, ok := s.AdditionalProperties.(bool); !ok || b {
				t.Errorf("%s: the server refuses unknown fields; want additionalProperties: false", name)
			}
		} else {
			req := slices.Clone(s.Required)
			slices.Sort(req)
			slices.Sort(always)
			if !slices.Equal(req, always) {
				t.Errorf("%s: required %v, but the server always sends %v (the fields without omitempty)", name, req, always)
			}
		}
		for tag, f := range fields {
			p := s.Properties[tag]
			if p == nil {
				continue
			}
			if problem := oaTypeMismatch(doc, p, f.Type, schemaOf, timeType); problem != "" {
				t.Errorf("%s.%s (%s.%s, %s): %s", name, tag, typ, f.Name, f.Type, problem)
			}
		}
	}
}

// oaTypeMismatch says how a property's schema disagrees with a Go type, or
// returns "".
func oaTypeMismatch(doc *oaDoc, p *oaSchema, typ reflect.Type, schemaOf map[reflect.Type]string, timeType reflect.Type) string {
	if typ.Kind() == reflect.Pointer {
		typ = typ.Elem()
	}
	if name, ok := schemaOf[typ]; ok && typ.Kind() == reflect.Struct {
		if p.Ref != "#/components/schemas/"+name {
			return "want $ref #/components/schemas/" + name + ", got " + refOrType(p)
		}
		return ""
	}
	if p.Ref != "" {
		p = doc.Components.Schemas[strings.TrimPrefix(p.Ref, "#/components/schemas/")]
		if p == nil {
			return "unresolved $ref"
		}
	}
	want := ""
	switch {
	case typ == timeType:
		if p.Type != "string" || p.Format != "date-time" {
			return "want string/date-time, got " + refOrType(p)
		}
		return ""
	case typ == reflect.TypeFor[json.RawMessage]():
		// Embedded JSON documents (signed TUF metadata).
		want = "object"
	case typ.Implements(jsonMarshaler) || reflect.PointerTo(typ).Implements(jsonMarshaler):
		// Such as rollout.Duration: an integer in Go, "30m" in JSON.
		want = "string"
	case typ.Kind() == reflect.String:
		want = "string"
	case typ.Kind() == reflect.Bool:
		want = "boolean"
	case typ.Kind() >= reflect.Int && typ.Kind() <= reflect.Uint64:
		want = "integer"
	case typ.Kind() == reflect.Float32 || typ.Kind() == reflect.Float64:
		want = "number"
	case typ.Kind() == reflect.Map:
		want = "object"
	case typ.Kind() == reflect.Slice:
		if p.Type != "array" || p.Items == nil {
			return "want an array with items, got " + refOrType(p)
		}
		if problem := oaTypeMismatch(doc, p.Items, typ.Elem(), schemaOf, timeType); problem != "" {
			return "items: " + problem
		}
		return ""
	default:
		return "no rule for Go kind " + typ.Kind().String()
	}
	if p.Type != want {
		return "want type " + want + ", got " + refOrType(p)
	}
	return ""
}

var jsonMarshaler = reflect.TypeFor[json.Marshaler]()

func refOrType(p *oaSchema) string {
	if p.Ref != "" {
		return "$ref " + p.Ref
	}
	if p.Type == "" {
		return "no type"
	}
	return p.Type
}

// TestOpenAPIEnumsMatchCode: the event types and device states the spec
// lists are the protocol's, which the server accepts and the agent sends.
func TestOpenAPIEnumsMatchCode(t *testing.T) {
	doc, _, _ := loadOpenAPI(t)
	for _, c := range []struct {
		name, schema, property string
		inCode                 []string
	}{
		{"protocol.EventTypes", "EventReport", "type", protocol.EventTypes},
		{"protocol.ChannelStates", "ChannelReport", "state", protocol.ChannelStates},
	} {
		s := doc.Components.Schemas[c.schema]
		if s == nil || s.Properties[c.property] == nil {
			t.Errorf("components.schemas.%s.%s is missing", c.schema, c.property)
			continue
		}
		inSpec, inCode := slices.Clone(s.Properties[c.property].Enum), slices.Clone(c.inCode)
		slices.Sort(inCode)
		slices.Sort(inSpec)
		if !slices.Equal(inCode, inSpec) {
			t.Errorf("%s.%s: enum %q, but %s is %q", c.schema, c.property, inSpec, c.name, inCode)
		}
	}
}

// TestOpenAPIWebhookEventsMatchCode: the event types a subscription may
// name are the ones the server sends.
func TestOpenAPIWebhookEventsMatchCode(t *testing.T) {
	doc, _, _ := loadOpenAPI(t)
	s := doc.Components.Schemas["WebhookEventType"]
	if s == nil || !slices.Equal(s.Enum, notify.Types) {
		t.Fatalf("WebhookEventType enum %v, want %v", s, notify.Types)
	}
	var prefixed []string
	for _, ty := range notify.Types {
		prefixed = append(prefixed, "dev.ringfence."+ty)
	}
	if p := doc.Components.Schemas["WebhookEventTypePrefixed"]; p == nil || !slices.Equal(p.Enum, prefixed) {
		t.Fatalf("WebhookEventTypePrefixed enum %v, want %v", p, prefixed)
	}
}
