package server_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/ringfence/ringfence/internal/server"
)

// Names, reasons and device facts are shown to people (audit list, the
// console, logs): a control or direction character is refused with a 400
// that names the field, wherever it is sent.
func TestTextFieldsRefuseControlAndBidi(t *testing.T) {
	forEachStore(t, func(t *testing.T, e *env) {
		d := e.enroll(t, "7.12.0")
		bad := map[string]string{
			"right-to-left override": "invoice\u202Etxt.exe",
			"isolate":                "a\u2066b",
			"C1 control":             "a\u009bb",
			"newline":                "ok\nforged log line",
			"escape":                 "\x1b[31mred",
			"line separator":         "a\u2028b",
		}
		for what, s := range bad {
			for _, tc := range []struct {
				field  string
				method string
				path   string
				token  string
				body   any
			}{
				{"name", "POST", "/v1/tenants", e.creds.AdminToken, map[string]string{"id": "x-corp", "kind": "org", "name": s}},
				{"name", "POST", "/v1/tokens", e.creds.AdminToken, map[string]string{"tenant": "contoso", "role": "viewer", "name": s}},
				{"reason", "POST", "/v1/releases/" + seedRelease + "/halt", e.creds.PublisherToken, map[string]string{"reason": s}},
				{"reason", "PUT", "/v1/kill-switch", e.creds.AdminToken, map[string]any{"engaged": true, "reason": s}},
				{"events[0].reason", "POST", "/v1/checkin", d.cred, d.report(292, server.EventReport{Seq: 1, Type: "worker-crash", Channel: "acme/ipc", Version: 292, Reason: s})},
				{"os_build", "POST", "/v1/checkin", d.cred, server.CheckinRequest{Platform: "windows", OSBuild: s, AgentVersion: "7.12.0"}},
			} {
				code, body := e.call(t, tc.method, tc.path, tc.token, tc.body)
				if code != http.StatusBadRequest || !strings.Contains(string(body), tc.field+":") {
					t.Errorf("%s in %s of %s %s: got %d %s, want 400 naming the field", what, tc.field, tc.method, tc.path, code, body)
				}
			}
		}
		// Plain text in any script passes.
		e.must(t, http.StatusCreated, "POST", "/v1/tenants", e.creds.AdminToken, map[string]string{"id": "x-corp", "kind": "org", "name": "Hôpital Été — 東京 שלום"}, nil)
	})
}
