package server_test

// The web console in a real headless Chromium against a real server: the
// people of a release sign in, watch it halt by itself without reloading
// the page, approve, resume and halt it with a reason; a viewer sees no
// action and a forged post is refused; an organisation's admin sees its
// own fleet only. One browser serves the whole package (TestMain stops
// it); each person gets a browser context of their own, so their cookies
// stay apart. Screenshots of the main pages go to $RINGFENCE_SCREENSHOTS
// (docs/console/ holds the current ones) or a temporary directory.

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/ringfence/ringfence/internal/console"
	"github.com/ringfence/ringfence/internal/server"
	"github.com/ringfence/ringfence/internal/store"
	"github.com/ringfence/ringfence/internal/version"
)

func TestMain(m *testing.M) {
	code := m.Run()
	chromium.stop()
	if reportSpecMismatches() {
		code = max(code, 1)
	}
	os.Exit(code)
}

// sharedBrowser is the package's one headless browser, started by the
// first test that needs it.
type sharedBrowser struct {
	once   sync.Once
	ctx    context.Context
	cancel func()
	err    error
}

var chromium sharedBrowser

func (b *sharedBrowser) stop() {
	if b.cancel != nil {
		b.cancel()
	}
}

const chromiumPath = "/usr/bin/chromium"

// browser is the shared Chromium; without one the test skips, or fails
// under CI (scripts/test installs Debian's chromium).
func browser(t *testing.T) context.Context {
	t.Helper()
	path := os.Getenv("RINGFENCE_CHROMIUM")
	if path == "" {
		path = chromiumPath
	}
	if _, err := os.Stat(path); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("chromium is missing at %s (CI=true): scripts/test installs it with apt-get install chromium", path)
		}
		t.Skipf("chromium is missing at %s; install Debian's chromium to run the console's browser tests", path)
	}
	chromium.once.Do(func() {
		dir, err := os.MkdirTemp("", "ringfence-chromium-")
		if err != nil {
			chromium.err = err
			return
		}
		alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
			chromedp.ExecPath(path), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
			chromedp.NoDefaultBrowserCheck, chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
			chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true), chromedp.UserDataDir(dir),
			chromedp.WindowSize(1280, 900))
		ctx, cancel := chromedp.NewContext(alloc)
		chromium.ctx = ctx
		chromium.cancel = func() {
			cancel()
			cancelAlloc()
			os.RemoveAll(dir)
		}
		// The first run starts the browser; it takes no timeout, which
		// would end the browser with it.
		chromium.err = chromedp.Do(ctx)
	})
	if chromium.err != nil {
		t.Fatalf("start chromium: %v", chromium.err)
	}
	return chromium.ctx
}

// person is someone using the console in a browser context of their own.
type person struct {
	t    *testing.T
	name string
	ctx  context.Context
	url  string
}

// browserWait bounds every browser step: generous, the machine is shared.
const browserWait = 90 * time.Second

// signIn opens the console as a person would and signs in with token.
func (e *env) signIn(t *testing.T, name, token string) *person {
	t.Helper()
	ctx, cancel := chromedp.NewContext(browser(t), chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	if err := chromedp.Do(ctx); err != nil { // opens the tab, without a timeout
		t.Fatalf("%s: open a tab: %v", name, err)
	}
	p := &person{t: t, name: name, ctx: ctx, url: e.url}
	p.do("open the console", chromedp.Navigate(e.url+"/"), chromedp.WaitVisible(chromedp.CSS("#token")))
	p.submit("sign in", chromedp.SendKeys(chromedp.CSS("#token"), token), chromedp.Click(chromedp.CSS("#signin")))
	p.do("signed in", chromedp.WaitVisible(chromedp.CSS("#who")))
	return p
}

// submit runs steps that post a form and waits for the page it leads to,
// which must answer 200.
func (p *person) submit(what string, steps ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, browserWait)
	defer cancel()
	resp, err := chromedp.RunResponse(ctx, steps...)
	if err != nil {
		p.t.Fatalf("%s: %s: %v", p.name, what, err)
	}
	if resp.Status != http.StatusOK {
		p.t.Fatalf("%s: %s: the page after the form answered %d %s", p.name, what, resp.Status, resp.StatusText)
	}
}

func (p *person) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, browserWait)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		p.t.Fatalf("%s: %s: %v", p.name, what, err)
	}
}

func run[T any](p *person, what string, a chromedp.Action[T]) T {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, browserWait)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		p.t.Fatalf("%s: %s: %v", p.name, what, err)
	}
	return v
}

func (p *person) open(path string, visible string) {
	p.t.Helper()
	p.do("open "+path, chromedp.Navigate(p.url+path), chromedp.WaitVisible(chromedp.CSS(visible)))
}

func (p *person) text(sel string) string {
	p.t.Helper()
	return strings.TrimSpace(run(p, "read "+sel, chromedp.Text(chromedp.CSS(sel))))
}

// waitFor waits until the JavaScript condition holds in the page.
func (p *person) waitFor(what, cond string) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, browserWait)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](cond, chromedp.WithPollingTimeout(browserWait))); err != nil {
		p.t.Fatalf("%s: waiting for %s: %v", p.name, what, err)
	}
}

// act fills a release action's reason and submits it.
func (p *person) act(action, reason string) {
	p.t.Helper()
	p.submit(action, chromedp.SendKeys(chromedp.CSS("#reason-"+action), reason), chromedp.Click(chromedp.CSS("#do-"+action)))
	p.do(action+": the page", chromedp.WaitVisible(chromedp.CSS("#state")))
}

// screenshot saves the page as NAME.png for the docs and CI artifacts.
func (p *person) screenshot(name string) {
	p.t.Helper()
	dir := os.Getenv("RINGFENCE_SCREENSHOTS")
	if dir == "" {
		dir = screenshotDir(p.t)
	}
	png := run(p, "screenshot "+name, chromedp.FullScreenshot(100))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		p.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		p.t.Fatal(err)
	}
}

var screenshots struct {
	once sync.Once
	dir  string
}

func screenshotDir(t *testing.T) string {
	screenshots.once.Do(func() { screenshots.dir = t.TempDir() })
	return screenshots.dir
}

func newConsoleEnv(t *testing.T) *env { return newEnvConfig(t, "", consoleConfig()) }

// consoleConfig is the stories' server with the web console mounted.
func consoleConfig() server.Config {
	return server.Config{ControllerTick: 24 * time.Hour, Console: console.Handler}
}

// shownActions lists the ids of the action buttons a page shows.
const shownActions = `Array.from(document.querySelectorAll("form.action:not([hidden]) button")).map(b => b.id).join(" ")`

func TestConsoleReleaseStory(t *testing.T) {
	e := newConsoleEnv(t)
	f := standardFleet(t, e)
	f.onRelease = func(d *fleetDevice) []server.EventReport { return []server.EventReport{{Type: "worker-crash"}} }
	rel := e.startRelease(t, quickPlan(), "normal")
	page := "/console/releases/" + rel.ID

	// The publisher follows the release from the list.
	pub := e.signIn(t, "publisher", e.creds.PublisherToken)
	pub.open("/console/releases?vendor=acme&state=rolling", "#releases")
	if got := pub.text("#releases tbody"); !strings.Contains(got, rel.ID) || !strings.Contains(got, "rolling") {
		t.Fatalf("release list filtered to rolling acme releases: %q, want %s rolling", got, rel.ID)
	}
	pub.open("/console/releases", "#releases")
	if got, want := pub.text("#version"), "Ringfence "+version.String(); got != want {
		t.Errorf("footer %q, want %q", got, want)
	}
	pub.screenshot("releases")
	pub.open(page, "#state")
	if got := pub.text("#state"); got != "rolling" {
		t.Fatalf("release page state %q, want rolling", got)
	}

	// The approver signs it off in the canary, with a reason.
	appr := e.signIn(t, "approver", e.creds.ApproverToken)
	appr.open(page, "#do-approve")
	// An approver is offered approve and halt, not what publishers do.
	if got := run(appr, "list actions", chromedp.Evaluate[string](shownActions)); got != "do-approve do-halt" {
		t.Errorf("approver's actions %q, want do-approve do-halt", got)
	}
	appr.act("approve", "canary figures reviewed in the console")
	if got := appr.text("#approvals"); !strings.HasPrefix(got, "1 of") {
		t.Errorf("approvals after approving: %q, want 1 of ...", got)
	}
	if got := appr.text("#approval-list"); !strings.Contains(got, "canary figures reviewed in the console") {
		t.Errorf("approval list %q lacks the approver's reason", got)
	}
	if st := e.status(t, rel.ID); st.ApprovalsGiven != 1 {
		t.Errorf("API: %d approvals given, want 1 (the console approves through the API's code)", st.ApprovalsGiven)
	}

	// Devices crash; the controller halts the release; the publisher's page
	// says so without a reload (a marker set on the page survives).
	run(pub, "mark the page", chromedp.Evaluate[bool]("window.ringfenceNoReload = true"))
	f.until(t, 12, "halted", inState("halted"), rel.ID)
	pub.waitFor("the state to read halted", `document.querySelector("#state") && document.querySelector("#state").textContent.trim() === "halted"`)
	if !run(pub, "check the marker", chromedp.Evaluate[bool]("window.ringfenceNoReload === true")) {
		t.Fatal("the release page reloaded to show the halt; it should update in place")
	}
	if got := pub.text("#summary"); !strings.Contains(got, "worker-crash") {
		t.Errorf("summary %q should say the worker-crash gate halted it", got)
	}
	if got := pub.text("#gates"); !strings.Contains(got, "fail") {
		t.Errorf("gates %q should show the failing gate", got)
	}
	if n := run(pub, "count timeline marks", chromedp.Evaluate[int](`document.querySelectorAll("#timeline .mark.halt").length`)); n != 1 {
		t.Errorf("timeline has %d halt marks, want 1", n)
	}
	// A halted release can be resumed, and nothing else: the page loaded
	// while it rolled now shows the resume form alone, without a reload.
	if got := run(pub, "list actions", chromedp.Evaluate[string](shownActions)); got != "do-resume" {
		t.Errorf("after the live update to halted the page shows actions %q, want do-resume alone", got)
	}
	pub.open(page, "#do-resume")
	pub.screenshot("release-halted")
	if got := run(pub, "list actions", chromedp.Evaluate[string](shownActions)); got != "do-resume" {
		t.Errorf("a halted release offers actions %q, want do-resume alone", got)
	}

	// The crashes explained, the publisher resumes and then halts by hand,
	// each with a reason that reaches the release and the audit log.
	f.onRelease = nil
	pub.open(page, "#do-resume")
	pub.act("resume", "crash was the test harness")
	if got := pub.text("#state"); got != "rolling" {
		t.Fatalf("after resume: state %q, want rolling", got)
	}
	pub.act("halt", "halted from the console to check the reason")
	if got := pub.text("#state"); got != "halted" {
		t.Fatalf("after halt: state %q, want halted", got)
	}
	if got := pub.text("#summary"); !strings.Contains(got, "halted from the console to check the reason") {
		t.Errorf("summary %q lacks the publisher's reason", got)
	}
	var audit []store.AuditEntry
	e.must(t, http.StatusOK, "GET", "/v1/audit", e.creds.AdminToken, nil, &audit)
	if last := audit[len(audit)-1]; last.Action != "release.halt" || last.Target != rel.ID || last.Reason != "halted from the console to check the reason" {
		t.Errorf("last audit entry %+v, want the publisher's release.halt with the reason", last)
	}

	// A vendor viewer sees the release and no action.
	viewer := e.createToken(t, "acme", store.RoleViewer)
	v := e.signIn(t, "viewer", viewer)
	v.open(page, "#state")
	if n := run(v, "count forms", chromedp.Evaluate[int](`document.querySelectorAll("form.action, #actions").length`)); n != 0 {
		t.Errorf("the viewer's release page has %d action forms, want none", n)
	}
	// Halted, the release offers the approver nothing: approving and
	// halting are over.
	appr.open(page, "#state")
	if n := run(appr, "count forms", chromedp.Evaluate[int](`document.querySelectorAll("form.action:not([hidden]), #actions:not([hidden])").length`)); n != 0 {
		t.Errorf("the approver's page of a halted release has %d action forms, want none", n)
	}

	// The admin's pages, for the docs.
	admin := e.signIn(t, "admin", e.creds.AdminToken)
	admin.open("/console/fleet", "#strata")
	if got := strings.Fields(admin.text("#versions")); !slices.Contains(got, "acme/ipc@292") {
		t.Errorf("the operator's devices by version %q, want acme/ipc@292", got)
	}
	admin.screenshot("fleet")
	admin.open("/console/audit", "#audit-verdict")
	if got := admin.text("#audit-verdict"); !strings.HasPrefix(got, "Verified") {
		t.Errorf("audit verdict %q, want Verified", got)
	}
	admin.screenshot("audit")
	admin.open("/console/kill-switches", "#kill-form")
	admin.submit("engage the kill switch", chromedp.SendKeys(chromedp.CSS(`#kill-form input[name="reason"]`), "incident drill"),
		chromedp.Click(chromedp.CSS(`#kill-form button[value="true"]`)))
	if got := admin.text("#kill-switches"); !strings.Contains(got, "every channel") || !strings.Contains(got, "engaged") || !strings.Contains(got, "incident drill") {
		t.Errorf("kill switches after engaging: %q", got)
	}
	var ks []store.KillSwitch
	e.must(t, http.StatusOK, "GET", "/v1/kill-switches", e.creds.AdminToken, nil, &ks)
	if len(ks) != 1 || ks[0].Scope != "*" || !ks[0].Engaged {
		t.Errorf("API kill switches %+v, want the global one engaged", ks)
	}
	admin.screenshot("kill-switches")
	admin.open("/console/content", "#content")
	if got := admin.text("#content"); !strings.Contains(got, "acme/ipc@293") {
		t.Errorf("content page %q lacks acme/ipc@293", got)
	}
	admin.screenshot("content")
	admin.submit("sign out", chromedp.Click(chromedp.CSS("#signout")))
	admin.do("signed out", chromedp.WaitVisible(chromedp.CSS("#token")))
	admin.screenshot("signin")
	admin.do("open a page signed out", chromedp.Navigate(e.url+"/console/fleet"), chromedp.WaitVisible(chromedp.CSS("#token")))
}

func TestConsoleOrganisationSeesItsOwnFleet(t *testing.T) {
	e := newConsoleEnv(t)
	other := standardFleet(t, e)  // fabrikam's 120 devices
	mine := e.enroll(t, "7.12.0") // contoso's one device
	e.checkin(t, mine, mine.report(292))

	org := e.signIn(t, "contoso admin", e.creds.OrgAdminToken)
	org.open("/console/fleet", "#orgs")
	if got := org.text("#fleet-summary"); !strings.HasPrefix(got, "1 devices") {
		t.Errorf("contoso's fleet summary %q, want its 1 device", got)
	}
	// Versions are counted by the store for the organisation alone.
	if got := strings.Fields(org.text("#versions")); !slices.Contains(got, "acme/ipc@292") || got[slices.Index(got, "acme/ipc@292")+1] != "1" {
		t.Errorf("contoso's devices by version %q, want acme/ipc@292 on its 1 device", got)
	}
	page := run(org, "read the page", chromedp.Evaluate[string](`document.body.innerText`))
	if strings.Contains(page, "fabrikam") || strings.Contains(page, "19045") || strings.Contains(page, other.devs[0].id) {
		t.Errorf("contoso's admin sees fabrikam's fleet:\n%s", page)
	}
	org.open("/console/fleet?org=fabrikam", "#error")
	if got := org.text("#error"); !strings.Contains(got, "fabrikam") {
		t.Errorf("asking for fabrikam's fleet: %q, want a refusal naming it", got)
	}
}

// TestConsoleRefusesForgedPosts posts as a browser would not: no CSRF
// token, another site's origin, a role without the action, no session.
func TestConsoleRefusesForgedPosts(t *testing.T) {
	e := newConsoleEnv(t)
	standardFleet(t, e)
	rel := e.startRelease(t, quickPlan(), "normal")
	halt := "/console/releases/" + rel.ID + "/halt"

	pub := newFormClient(t, e, e.creds.PublisherToken)
	viewer := newFormClient(t, e, e.createToken(t, "acme", store.RoleViewer))
	for _, c := range []struct {
		name   string
		client *formClient
		form   url.Values
		header map[string]string
		want   int
	}{
		{"no-csrf-token", pub, url.Values{"reason": {"forged"}}, nil, http.StatusForbidden},
		{"wrong-csrf-token", pub, url.Values{"reason": {"forged"}, "csrf": {"AAAA"}}, nil, http.StatusForbidden},
		{"viewer-csrf-for-publisher", pub, url.Values{"reason": {"forged"}, "csrf": {viewer.csrf}}, nil, http.StatusForbidden},
		{"other-site-origin", pub, url.Values{"reason": {"forged"}, "csrf": {pub.csrf}}, map[string]string{"Origin": "http://evil.example"}, http.StatusForbidden},
		{"cross-site-fetch", pub, url.Values{"reason": {"forged"}, "csrf": {pub.csrf}}, map[string]string{"Sec-Fetch-Site": "cross-site"}, http.StatusForbidden},
		{"viewer-with-its-token", viewer, url.Values{"reason": {"viewers may not halt"}, "csrf": {viewer.csrf}}, nil, http.StatusForbidden},
		{"no-session", newFormClient(t, e, ""), url.Values{"reason": {"forged"}, "csrf": {pub.csrf}}, nil, http.StatusForbidden},
		{"publisher-without-reason", pub, url.Values{"csrf": {pub.csrf}}, nil, http.StatusBadRequest},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, body := c.client.post(t, halt, c.form, c.header)
			if code != c.want {
				t.Fatalf("got %d, want %d\n%s", code, c.want, body)
			}
			if st := e.status(t, rel.ID); st.Release.State != "rolling" {
				t.Fatalf("release is %s after a refused post, want rolling", st.Release.State)
			}
		})
	}
	// Signing in needs the sign-in form's CSRF token and a live token.
	anon := newFormClient(t, e, "")
	m := csrfField.FindStringSubmatch(anon.body(t, anon.get(t, "/console/signin")))
	if m == nil {
		t.Fatal("sign-in page has no CSRF field")
	}
	for _, c := range []struct {
		name string
		form url.Values
		want int
	}{
		{"unknown-token", url.Values{"token": {"rft_" + strings.Repeat("0", 64)}, "csrf": {m[1]}}, http.StatusUnauthorized},
		{"no-csrf-token", url.Values{"token": {e.creds.PublisherToken}}, http.StatusForbidden},
		{"another-forms-token", url.Values{"token": {e.creds.PublisherToken}, "csrf": {pub.csrf}}, http.StatusForbidden},
	} {
		if code, body := anon.post(t, "/console/signin", c.form, nil); code != c.want {
			t.Errorf("sign-in with %s: got %d, want %d\n%s", c.name, code, c.want, body)
		}
	}

	// The same post, done properly, halts.
	code, body := pub.post(t, halt, url.Values{"reason": {"a real halt"}, "csrf": {pub.csrf}}, map[string]string{"Origin": e.url, "Sec-Fetch-Site": "same-origin"})
	if code != http.StatusSeeOther {
		t.Fatalf("publisher's halt: got %d, want 303\n%s", code, body)
	}
	if st := e.status(t, rel.ID); st.Release.State != "halted" {
		t.Fatalf("release is %s, want halted", st.Release.State)
	}

	// Every page is sent with a CSP without inline script, and may not be
	// framed; the session cookie is HttpOnly and SameSite=Strict.
	resp := pub.get(t, "/console/releases/"+rel.ID)
	csp := resp.Header.Get("Content-Security-Policy")
	if !strings.Contains(csp, "default-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") || strings.Contains(csp, "unsafe-inline") {
		t.Errorf("Content-Security-Policy %q", csp)
	}
	if got := resp.Header.Get("X-Frame-Options"); got != "DENY" {
		t.Errorf("X-Frame-Options %q, want DENY", got)
	}
	if !strings.Contains(pub.setCookie, "HttpOnly") || !strings.Contains(pub.setCookie, "SameSite=Strict") {
		t.Errorf("session cookie %q, want HttpOnly and SameSite=Strict", pub.setCookie)
	}
	// A browser asking for / is sent to the console; API clients still
	// get JSON 404s elsewhere.
	req, _ := http.NewRequest(http.MethodGet, e.url+"/", nil)
	req.Header.Set("Accept", "text/html,application/xhtml+xml;q=0.9,*/*;q=0.8")
	if r, err := pub.c.Do(req); err != nil {
		t.Fatal(err)
	} else if r.Body.Close(); r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/console/" {
		t.Errorf("a browser's GET /: %d to %q, want 303 to /console/", r.StatusCode, r.Header.Get("Location"))
	}
	for _, path := range []string{"/", "/nowhere"} {
		if r := e.raw(t, "GET", path, "", nil); r.StatusCode != http.StatusNotFound || !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
			t.Errorf("an API client's GET %s: %d %s, want a JSON 404", path, r.StatusCode, r.Header.Get("Content-Type"))
		}
	}

	// Revoking a token ends its console sessions at once.
	var tokens []server.TokenInfo
	e.must(t, http.StatusOK, "GET", "/v1/tokens?tenant=acme", e.creds.AdminToken, nil, &tokens)
	for _, tk := range tokens {
		if tk.Role == string(store.RoleViewer) {
			e.must(t, http.StatusOK, "DELETE", "/v1/tokens/"+tk.ID, e.creds.AdminToken, nil, nil)
		}
	}
	if r := viewer.get(t, "/console/releases"); r.Body.Close() != nil || r.StatusCode != http.StatusSeeOther || !strings.HasPrefix(r.Header.Get("Location"), "/console/signin") {
		t.Errorf("a revoked token's session: %d to %q, want 303 to the sign-in page", r.StatusCode, r.Header.Get("Location"))
	}
}

// formClient is a browser-less client of the console's forms.
type formClient struct {
	e         *env
	c         *http.Client
	csrf      string // the session's CSRF token, from a page
	setCookie string // the session's Set-Cookie header
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// newFormClient signs in with token ("" stays signed out).
func newFormClient(t testing.TB, e *env, token string) *formClient {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	fc := &formClient{e: e, c: &http.Client{Jar: jar, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
	if token == "" {
		return fc
	}
	page := fc.body(t, fc.get(t, "/console/signin"))
	m := csrfField.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("sign-in page has no CSRF field:\n%s", page)
	}
	resp, err := fc.c.PostForm(e.url+"/console/signin", url.Values{"token": {token}, "csrf": {m[1]}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign in: %d, want 303", resp.StatusCode)
	}
	for _, c := range resp.Header.Values("Set-Cookie") {
		if strings.HasPrefix(c, "ringfence_session=") {
			fc.setCookie = c
		}
	}
	page = fc.body(t, fc.get(t, "/console/releases"))
	if m = csrfField.FindStringSubmatch(page); m == nil {
		t.Fatalf("signed-in page has no CSRF field:\n%s", page)
	}
	fc.csrf = m[1]
	return fc
}

func (fc *formClient) get(t testing.TB, path string) *http.Response {
	t.Helper()
	resp, err := fc.c.Get(fc.e.url + path)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func (fc *formClient) body(t testing.TB, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil && !errors.Is(err, io.EOF) {
		t.Fatal(err)
	}
	return string(b)
}

func (fc *formClient) post(t testing.TB, path string, form url.Values, header map[string]string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, fc.e.url+path, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := fc.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, fc.body(t, resp)
}
