// Package console is Ringfence's web console: server-rendered pages that
// `ringfence server` mounts at /console/ to watch and steer releases,
// the fleet, kill switches, the audit log and published content. Pages
// read through the server's own functions (the ones its API handlers
// call), so the console has no rules of its own: a person signs in with
// an API token and sees and does what that token may on the API.
//
// Security: a session is a signed HttpOnly, SameSite=Strict cookie (Secure
// over TLS) naming the token, looked up again on every request; every form
// carries a per-session CSRF token, and posts a browser says came from
// another site are refused; pages are sent with a Content-Security-Policy
// that allows only the console's own script and style files, and may not
// be framed. Assets are embedded in the binary.
package console

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ringfence/ringfence/internal/rollout"
	"github.com/ringfence/ringfence/internal/server"
	"github.com/ringfence/ringfence/internal/store"
	"github.com/ringfence/ringfence/internal/version"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// backend is what the console reads and does through the server: the
// same functions the API handlers call.
type backend interface {
	SignIn(r *http.Request, token string) (server.Principal, error)
	TokenPrincipal(ctx context.Context, id string) (server.Principal, error)
	Releases(ctx context.Context, p server.Principal, channel string) ([]server.ReleaseReport, error)
	Release(ctx context.Context, p server.Principal, id string) (server.ReleaseReport, error)
	WatchStatus(ctx context.Context, p server.Principal, id string) (server.ReleaseStatus, error)
	Timeline(ctx context.Context, p server.Principal, id string) ([]server.TimelinePoint, error)
	Act(ctx context.Context, p server.Principal, id, action, reason string) (server.ReleaseReport, error)
	KillSwitches(ctx context.Context, p server.Principal) ([]store.KillSwitch, error)
	SetKillSwitch(ctx context.Context, p server.Principal, scope string, engaged bool, reason string) (store.KillSwitch, error)
	Audit(ctx context.Context, p server.Principal, after int64, limit int) ([]store.AuditEntry, error)
	VerifyAudit(ctx context.Context) (server.AuditVerdict, error)
	Fleet(ctx context.Context, p server.Principal, org string) (server.FleetView, error)
	Published(ctx context.Context, p server.Principal) ([]server.PublishedArtifact, error)
	DeriveKey(purpose string) []byte
	Now() time.Time
	Log() *slog.Logger
	ControllerTick() time.Duration
	HeartbeatSpan() time.Duration
}

// Console serves the pages.
type Console struct {
	b        backend
	sessions *sessions
	pages    map[string]*template.Template
	mux      *http.ServeMux
	log      *slog.Logger
	statuses statusCache
}

// Handler is the console for server s: what server.Config.Console takes.
func Handler(s *server.Server) http.Handler { return New(s) }

// New builds the console on a backend (a *server.Server).
func New(b backend) *Console {
	c := &Console{b: b, sessions: newSessions(b.DeriveKey("console session")), log: b.Log(), pages: map[string]*template.Template{}}
	funcs := template.FuncMap{
		"ts":      func(t time.Time) string { return fmtTime(t) },
		"age":     func(t time.Time) string { return age(b.Now(), t) },
		"dur":     func(d time.Duration) string { return d.Round(time.Second).String() },
		"figures": gateFigures,
		"pct":     func(n, of int) string { return percent(int64(n), int64(of)) },
		"pct64":   percent,
		"join":    strings.Join,
		"has":     func(xs []string, x string) bool { return slices.Contains(xs, x) },
		"version": version.String,
		"inc":     func(i int) int { return i + 1 },
		"title": func(s string) string {
			if s == "" {
				return s
			}
			return strings.ToUpper(s[:1]) + s[1:]
		},
	}
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		panic(err) // embedded at build time
	}
	for _, n := range names {
		if strings.HasSuffix(n, "/layout.html") || strings.HasSuffix(n, "/status.html") {
			continue
		}
		name := strings.TrimSuffix(strings.TrimPrefix(n, "templates/"), ".html")
		c.pages[name] = template.Must(template.New(name).Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/status.html", n))
	}
	mux := http.NewServeMux()
	static, _ := fs.Sub(staticFS, "static")
	files := http.StripPrefix("/console/static/", http.FileServerFS(static))
	mux.HandleFunc("GET /console/static/{file}", func(w http.ResponseWriter, r *http.Request) {
		files.ServeHTTP(w, r) // one file each; no directory listing
	})
	mux.HandleFunc("GET /console/{$}", c.page(func(w http.ResponseWriter, r *http.Request, v *view) error {
		http.Redirect(w, r, "/console/releases", http.StatusSeeOther)
		return nil
	}))
	mux.HandleFunc("GET /console/signin", c.signinForm)
	mux.HandleFunc("POST /console/signin", c.signin)
	mux.HandleFunc("POST /console/signout", c.form(c.signout))
	mux.HandleFunc("GET /console/releases", c.page(c.releases))
	mux.HandleFunc("GET /console/releases/{id}", c.page(c.release))
	mux.HandleFunc("GET /console/releases/{id}/live", c.page(c.releaseLive))
	mux.HandleFunc("POST /console/releases/{id}/{action}", c.form(c.act))
	mux.HandleFunc("GET /console/fleet", c.page(c.fleet))
	mux.HandleFunc("GET /console/kill-switches", c.page(c.killSwitches))
	mux.HandleFunc("POST /console/kill-switches", c.form(c.setKillSwitch))
	mux.HandleFunc("GET /console/audit", c.page(c.audit))
	mux.HandleFunc("GET /console/content", c.page(c.content))
	mux.HandleFunc("/console/", func(w http.ResponseWriter, r *http.Request) {
		c.fail(w, r, nil, &server.HTTPError{Code: http.StatusNotFound, Msg: "not found", Detail: "no console page " + r.Method + " " + r.URL.Path})
	})
	c.mux = mux
	return c
}

// ServeHTTP sets the security headers every answer carries.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	if !strings.HasPrefix(r.URL.Path, "/console/static/") {
		h.Set("Cache-Control", "no-store")
	}
	c.mux.ServeHTTP(w, r)
}

// view is what every page template gets.
type view struct {
	P       server.Principal
	CSRF    string
	Title   string
	Nav     string
	Now     time.Time
	Data    any
	Error   *server.HTTPError
	IsAdmin bool
}

func (v *view) may(action, channel string) bool { return server.MayAct(v.P, channel, action) }

// authenticate finds the request's session and who it acts for.
func (c *Console) authenticate(r *http.Request) (session, server.Principal, error) {
	ck, err := r.Cookie(sessionCookie)
	if err != nil {
		return session{}, server.Principal{}, errNoSession
	}
	se, err := c.sessions.check(ck.Value, c.b.Now())
	if err != nil {
		return se, server.Principal{}, err
	}
	p, err := c.b.TokenPrincipal(r.Context(), se.tokenID)
	return se, p, err
}

func (c *Console) newView(se session, p server.Principal) *view {
	return &view{P: p, CSRF: c.sessions.csrf(se), Now: c.b.Now(), IsAdmin: server.MayReadAudit(p)}
}

// page wraps a GET handler: no session sends the browser to sign in.
func (c *Console) page(h func(w http.ResponseWriter, r *http.Request, v *view) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		se, p, err := c.authenticate(r)
		if err != nil {
			var he *server.HTTPError
			if errors.As(err, &he) && he.Code >= 500 {
				c.fail(w, r, nil, he)
				return
			}
			setCookie(w, r, sessionCookie, "", 0)
			http.Redirect(w, r, "/console/signin?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
			return
		}
		v := c.newView(se, p)
		if err := h(w, r, v); err != nil {
			c.fail(w, r, v, err)
		}
	}
}

// form wraps a POST handler: a session, a request the browser does not
// say came from another site, and the session's CSRF token are required
// before anything is read or done.
func (c *Console) form(h func(w http.ResponseWriter, r *http.Request, v *view, se session) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := sameOrigin(r); err != nil {
			c.fail(w, r, nil, &server.HTTPError{Code: http.StatusForbidden, Msg: "forbidden", Detail: "cross-site form post refused: " + err.Error()})
			return
		}
		se, p, err := c.authenticate(r)
		if err != nil {
			c.fail(w, r, nil, &server.HTTPError{Code: http.StatusForbidden, Msg: "forbidden", Detail: "no valid session: sign in again"})
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
		if err := r.ParseForm(); err != nil {
			c.fail(w, r, nil, &server.HTTPError{Code: http.StatusBadRequest, Msg: "bad request", Detail: "form: " + err.Error()})
			return
		}
		if !validToken(r.PostForm.Get("csrf"), c.sessions.csrf(se)) {
			c.fail(w, r, nil, &server.HTTPError{Code: http.StatusForbidden, Msg: "forbidden", Detail: "csrf: the form's token is missing or not this session's; reload the page and try again"})
			return
		}
		v := c.newView(se, p)
		if err := h(w, r, v, se); err != nil {
			c.fail(w, r, v, err)
		}
	}
}

// fail renders an error page with the status and what was wrong.
func (c *Console) fail(w http.ResponseWriter, r *http.Request, v *view, err error) {
	var he *server.HTTPError
	if !errors.As(err, &he) {
		he = &server.HTTPError{Code: http.StatusInternalServerError, Msg: "internal error", Detail: "the server could not complete the request", Err: err}
	}
	if he.Code >= 500 {
		c.log.Error("console request failed", "method", r.Method, "path", r.URL.Path, "status", he.Code, "err", err)
	}
	if v == nil {
		v = &view{Now: c.b.Now()}
	}
	v.Title, v.Error = fmt.Sprintf("%d %s", he.Code, he.Msg), he
	c.render(w, r, he.Code, "error", v)
}

func (c *Console) render(w http.ResponseWriter, r *http.Request, code int, name string, v *view) {
	t := c.pages[name]
	if t == nil {
		c.log.Error("console page has no template", "page", name)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	if err := t.ExecuteTemplate(w, "layout", v); err != nil {
		c.log.Debug("console page not written", "page", name, "path", r.URL.Path, "err", err)
	}
}

func (c *Console) ok(w http.ResponseWriter, r *http.Request, name, title, nav string, v *view, data any) error {
	v.Title, v.Nav, v.Data = title, nav, data
	c.render(w, r, http.StatusOK, name, v)
	return nil
}

// --- sign-in ---

func (c *Console) signinForm(w http.ResponseWriter, r *http.Request) {
	if _, _, err := c.authenticate(r); err == nil {
		http.Redirect(w, r, "/console/releases", http.StatusSeeOther)
		return
	}
	c.showSignin(w, r, http.StatusOK, "")
}

func (c *Console) showSignin(w http.ResponseWriter, r *http.Request, code int, problem string) {
	pre := randomString(16)
	setCookie(w, r, signinCookie, pre, time.Hour)
	v := &view{Now: c.b.Now(), Title: "Sign in", CSRF: c.sessions.signinCSRF(pre),
		Data: map[string]string{"Next": safeNext(r.FormValue("next")), "Problem": problem}}
	c.render(w, r, code, "signin", v)
}

// signin exchanges an API token for a session: the token is checked by
// the server exactly as on the API (including the failed-attempt limit).
func (c *Console) signin(w http.ResponseWriter, r *http.Request) {
	if err := sameOrigin(r); err != nil {
		c.fail(w, r, nil, &server.HTTPError{Code: http.StatusForbidden, Msg: "forbidden", Detail: "cross-site sign-in refused: " + err.Error()})
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	if err := r.ParseForm(); err != nil {
		c.fail(w, r, nil, &server.HTTPError{Code: http.StatusBadRequest, Msg: "bad request", Detail: "form: " + err.Error()})
		return
	}
	pre, err := r.Cookie(signinCookie)
	if err != nil || !validToken(r.PostForm.Get("csrf"), c.sessions.signinCSRF(pre.Value)) {
		c.fail(w, r, nil, &server.HTTPError{Code: http.StatusForbidden, Msg: "forbidden", Detail: "csrf: the sign-in form's token is missing or stale; reload the page"})
		return
	}
	p, err := c.b.SignIn(r, r.PostForm.Get("token"))
	if err != nil {
		var he *server.HTTPError
		if errors.As(err, &he) && he.Code == http.StatusUnauthorized {
			c.showSignin(w, r, http.StatusUnauthorized, "That token is unknown or revoked.")
			return
		}
		c.fail(w, r, nil, err)
		return
	}
	value, _ := c.sessions.issue(p.TokenID, c.b.Now())
	setCookie(w, r, sessionCookie, value, sessionTTL)
	setCookie(w, r, signinCookie, "", 0)
	c.log.Info("console sign-in", "token", p.TokenID, "role", p.Role, "tenant", p.Tenant)
	http.Redirect(w, r, safeNext(r.PostForm.Get("next")), http.StatusSeeOther)
}

// safeNext keeps a post-sign-in redirect inside the console.
func safeNext(next string) string {
	if !strings.HasPrefix(next, "/console/") || strings.HasPrefix(next, "//") || strings.ContainsAny(next, "\\\r\n") {
		return "/console/releases"
	}
	return next
}

func (c *Console) signout(w http.ResponseWriter, r *http.Request, v *view, se session) error {
	c.sessions.end(se, c.b.Now())
	setCookie(w, r, sessionCookie, "", 0)
	http.Redirect(w, r, "/console/signin", http.StatusSeeOther)
	return nil
}

// --- releases ---

type releasesData struct {
	Releases               []server.ReleaseReport
	Vendor, Channel, State string
	States                 []string
	Vendors, Channels      []string
}

var releaseStates = []string{"draft", "rolling", "awaiting-approval", "paused", "completed", "halted", "rolled-back"}

func (c *Console) releases(w http.ResponseWriter, r *http.Request, v *view) error {
	q := r.URL.Query()
	d := releasesData{Vendor: q.Get("vendor"), Channel: q.Get("channel"), State: q.Get("state"), States: releaseStates}
	if d.State != "" && !slices.Contains(releaseStates, d.State) {
		return &server.HTTPError{Code: http.StatusBadRequest, Msg: "bad request", Detail: fmt.Sprintf("state: %q is not one of %s", d.State, strings.Join(releaseStates, ", "))}
	}
	for _, f := range []struct{ name, v string }{{"vendor", d.Vendor}, {"channel", d.Channel}} {
		if len(f.v) > 200 || strings.ContainsFunc(f.v, func(r rune) bool { return r < ' ' || r == 0x7f }) {
			return &server.HTTPError{Code: http.StatusBadRequest, Msg: "bad request", Detail: f.name + ": at most 200 printable characters"}
		}
	}
	all, err := c.b.Releases(r.Context(), v.P, "")
	if err != nil {
		return err
	}
	vendors, channels := map[string]bool{}, map[string]bool{}
	for _, rel := range all {
		vendor, _, _ := strings.Cut(rel.Channel, "/")
		vendors[vendor], channels[rel.Channel] = true, true
		if (d.Vendor == "" || vendor == d.Vendor) && (d.Channel == "" || rel.Channel == d.Channel) && (d.State == "" || rel.State == d.State) {
			d.Releases = append(d.Releases, rel)
		}
	}
	slices.SortFunc(d.Releases, func(a, b server.ReleaseReport) int {
		if c := b.CreatedAt.Compare(a.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(b.ID, a.ID)
	})
	d.Vendors, d.Channels = sortedKeys(vendors), sortedKeys(channels)
	return c.ok(w, r, "releases", "Releases", "releases", v, d)
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// releaseData is the release page: the report, its status when the
// principal may read it (vendors and the operator), the timeline chart
// and the actions the principal's role allows.
type releaseData struct {
	Rel    server.ReleaseReport
	Status *server.ReleaseStatus
	Chart  chart
	// Offered are the actions the principal's role allows, each with a
	// form; Actions those the release's state allows now, whose forms are
	// shown. The live part says which are allowed as the state moves on
	// (live.js shows and hides the forms, keeping any reason typed).
	Offered, Actions []string
	Poll             int // milliseconds between live updates
	Live             bool
}

func (c *Console) releaseData(ctx context.Context, v *view, id string) (*releaseData, error) {
	rel, err := c.b.Release(ctx, v.P, id)
	if err != nil {
		return nil, err
	}
	d := &releaseData{Rel: rel, Poll: int(pollEvery(c.b.ControllerTick()) / time.Millisecond)}
	d.Live = rel.State != string(store.ReleaseCompleted) && rel.State != string(store.ReleaseRolledBack)
	if server.MayReadStatus(v.P, rel.Channel) {
		st, err := c.status(ctx, v.P, rel)
		if err != nil {
			return nil, err
		}
		d.Status = &st
	}
	points, err := c.b.Timeline(ctx, v.P, id)
	if err != nil {
		return nil, err
	}
	var marks []timelineMark
	switch rel.State {
	case string(store.ReleaseHalted):
		marks = append(marks, timelineMark{At: rel.UpdatedAt, Label: "halted", Class: "halt"})
	case string(store.ReleaseRolledBack):
		marks = append(marks, timelineMark{At: rel.UpdatedAt, Label: "rolled back", Class: "halt"})
	case string(store.ReleaseCompleted):
		marks = append(marks, timelineMark{At: rel.UpdatedAt, Label: "completed", Class: "wave"})
	}
	waves := make([]string, len(rel.Plan.Waves))
	for i, w := range rel.Plan.Waves {
		waves[i] = w.Name
	}
	d.Chart = drawTimeline(points, waves, c.b.HeartbeatSpan(), marks)
	for _, a := range server.ReleaseActions {
		// Offered to who may use it, shown in a state that allows it: the
		// same rules the server applies when the form is posted.
		if !v.may(a, rel.Channel) {
			continue
		}
		d.Offered = append(d.Offered, a)
		if _, err := rollout.Apply(rollout.ReleaseState(rel.State), rollout.Action(a)); err == nil {
			d.Actions = append(d.Actions, a)
		}
	}
	return d, nil
}

// pollEvery is how often a release page asks for its status: twice per
// controller tick, between half a second and five seconds.
func pollEvery(tick time.Duration) time.Duration {
	return min(max(tick/2, 500*time.Millisecond), 5*time.Second)
}

func (c *Console) release(w http.ResponseWriter, r *http.Request, v *view) error {
	d, err := c.releaseData(r.Context(), v, r.PathValue("id"))
	if err != nil {
		return err
	}
	return c.ok(w, r, "release", "Release "+d.Rel.ID, "releases", v, d)
}

// releaseLive is the release page's status part alone: the page's script
// swaps it in place.
func (c *Console) releaseLive(w http.ResponseWriter, r *http.Request, v *view) error {
	d, err := c.releaseData(r.Context(), v, r.PathValue("id"))
	if err != nil {
		return err
	}
	v.Data = d
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if err := c.pages["release"].ExecuteTemplate(w, "status", v); err != nil {
		c.log.Debug("console fragment not written", "err", err)
	}
	return nil
}

func (c *Console) act(w http.ResponseWriter, r *http.Request, v *view, _ session) error {
	id, action := r.PathValue("id"), r.PathValue("action")
	if !slices.Contains(server.ReleaseActions, action) {
		return &server.HTTPError{Code: http.StatusNotFound, Msg: "not found", Detail: fmt.Sprintf("action: %q is not one of %s", action, strings.Join(server.ReleaseActions, ", "))}
	}
	if _, err := c.b.Act(r.Context(), v.P, id, action, r.PostForm.Get("reason")); err != nil {
		return err
	}
	http.Redirect(w, r, "/console/releases/"+url.PathEscape(id), http.StatusSeeOther)
	return nil
}

// --- fleet, kill switches, audit, content ---

func (c *Console) fleet(w http.ResponseWriter, r *http.Request, v *view) error {
	org := r.URL.Query().Get("org")
	if len(org) > 200 {
		return &server.HTTPError{Code: http.StatusBadRequest, Msg: "bad request", Detail: "org: at most 200 characters"}
	}
	f, err := c.b.Fleet(r.Context(), v.P, org)
	if err != nil {
		return err
	}
	return c.ok(w, r, "fleet", "Fleet", "fleet", v, f)
}

type killData struct {
	Switches []store.KillSwitch
	MayUse   bool
}

func (c *Console) killSwitches(w http.ResponseWriter, r *http.Request, v *view) error {
	ks, err := c.b.KillSwitches(r.Context(), v.P)
	if err != nil {
		return err
	}
	return c.ok(w, r, "killswitches", "Kill switches", "kill-switches", v, killData{Switches: ks, MayUse: server.MayUseKillSwitches(v.P)})
}

func (c *Console) setKillSwitch(w http.ResponseWriter, r *http.Request, v *view, _ session) error {
	scope := strings.TrimSpace(r.PostForm.Get("scope"))
	if scope == "" {
		scope = "*"
	}
	var engaged bool
	switch r.PostForm.Get("engaged") {
	case "true":
		engaged = true
	case "false":
	default:
		return &server.HTTPError{Code: http.StatusBadRequest, Msg: "bad request", Detail: "engaged: say true or false"}
	}
	if _, err := c.b.SetKillSwitch(r.Context(), v.P, scope, engaged, r.PostForm.Get("reason")); err != nil {
		return err
	}
	http.Redirect(w, r, "/console/kill-switches", http.StatusSeeOther)
	return nil
}

type auditData struct {
	Entries []store.AuditEntry
	Verdict server.AuditVerdict
	After   int64
	Next    int64
}

const auditPage = 200

func (c *Console) audit(w http.ResponseWriter, r *http.Request, v *view) error {
	var after int64
	if s := r.URL.Query().Get("after"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 0 {
			return &server.HTTPError{Code: http.StatusBadRequest, Msg: "bad request", Detail: fmt.Sprintf("after: want a sequence number from 0, got %q", s)}
		}
		after = n
	}
	es, err := c.b.Audit(r.Context(), v.P, after, auditPage)
	if err != nil {
		return err
	}
	verdict, err := c.b.VerifyAudit(r.Context())
	if err != nil {
		return &server.HTTPError{Code: http.StatusInternalServerError, Msg: "internal error", Detail: "the audit log could not be verified", Err: err}
	}
	d := auditData{Entries: es, Verdict: verdict, After: after}
	if len(es) == auditPage {
		d.Next = es[len(es)-1].Seq
	}
	return c.ok(w, r, "audit", "Audit log", "audit", v, d)
}

func (c *Console) content(w http.ResponseWriter, r *http.Request, v *view) error {
	as, err := c.b.Published(r.Context(), v.P)
	if err != nil {
		return err
	}
	return c.ok(w, r, "content", "Published content", "content", v, as)
}

// --- formatting ---

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04:05Z")
}

// age says how long ago t was, to the minute ("3 h 12 min").
func age(now, t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := now.Sub(t).Round(time.Minute)
	switch {
	case d < time.Minute:
		return "under a minute"
	case d < time.Hour:
		return fmt.Sprintf("%d min", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%d h %d min", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%d days", int(d.Hours()/24))
}

func percent(n, of int64) string {
	if of <= 0 {
		return "-"
	}
	return strconv.FormatFloat(100*float64(n)/float64(of), 'f', 1, 64) + "%"
}

// gateFigures are a gate's figures as release status prints them.
func gateFigures(g rollout.GateResult) []string {
	t, c, e := g.Figures()
	return []string{t, c, e}
}

// statusCache keeps each release's judged status for half a controller
// tick (pollEvery), for the release as last changed: judging a release
// reads its silence figures across the whole fleet (a third of a second
// at 100,000 devices on SQLite, the controller's own cost each tick), and
// every open page polls. A change to the release (a person's action, the
// controller's verdict) is a new key, so it shows at once; new telemetry
// shows within the tick, as the controller itself acts on it.
type statusCache struct {
	mu sync.Mutex
	m  map[string]cachedStatus
}

type cachedStatus struct {
	version string // the release's state and last change
	at      time.Time
	st      server.ReleaseStatus
}

const maxCachedStatuses = 1000

// status is the release's status for a principal who may read it (the
// caller checked server.MayReadStatus; the status is the same for all who
// may), judged afresh when the cached one is older than pollEvery.
func (c *Console) status(ctx context.Context, p server.Principal, rel server.ReleaseReport) (server.ReleaseStatus, error) {
	now, ttl := c.b.Now(), pollEvery(c.b.ControllerTick())
	// What a person or the controller changes on a release (its revision
	// is not on the report; a change may come within the same clock tick).
	version := fmt.Sprintf("%s|%d|%s|%s|%s|%d|%s", rel.State, rel.Wave, rel.Phase, rel.Reason, rel.HaltedBy, len(rel.Approvals), rel.UpdatedAt.UTC().Format(time.RFC3339Nano))
	c.statuses.mu.Lock()
	cached, ok := c.statuses.m[rel.ID]
	c.statuses.mu.Unlock()
	if ok && cached.version == version && now.Sub(cached.at) < ttl && !now.Before(cached.at) {
		return cached.st, nil
	}
	st, err := c.b.WatchStatus(ctx, p, rel.ID)
	if err != nil {
		return st, err
	}
	c.statuses.mu.Lock()
	defer c.statuses.mu.Unlock()
	if c.statuses.m == nil || len(c.statuses.m) >= maxCachedStatuses {
		c.statuses.m = map[string]cachedStatus{}
	}
	c.statuses.m[rel.ID] = cachedStatus{version: version, at: now, st: st}
	return st, nil
}
