package server_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
)

// FuzzCheckin posts arbitrary bytes as an enrolled device's check-in: the
// answer is never a server error and always JSON; a refusal carries an
// error and a detail.
func FuzzCheckin(f *testing.F) {
	for _, seed := range []string{
		`{"platform":"windows","os_build":"22631","agent_version":"7.12.0"}`,
		`{"platform":"windows","os_build":"22631","agent_version":"7.12.0","channels":[{"channel":"acme/ipc","active_version":292,"lkg_version":292,"state":"active"}]}`,
		`{"platform":"windows","os_build":"22631","agent_version":"7.12.0","channels":[{"channel":"acme/ipc","active_version":292,"lkg_version":291,"state":"probation"}],` +
			`"events":[{"seq":1,"type":"applied","channel":"acme/ipc","version":292},{"seq":2,"type":"actions","channel":"acme/ipc","version":292,"counts":{"block":3,"log":1}},` +
			`{"seq":3,"time":"2026-03-02T09:59:00Z","type":"reverted","channel":"acme/ipc","version":292,"reason":"boot loop"}],"health":"degraded"}`,
		`{"platform":"linux","os_build":"6.8","agent_version":"7.10","events":[{"seq":18446744073709551615,"type":"unclean-reboot"}]}`,
		`{"platform":"windows","os_build":"22631","agent_version":"7.12.0","events":[{"seq":2,"type":"healthy"},{"seq":1,"type":"healthy"}]}`,
		`{"platform":"windows","os_build":"22631","agent_version":"7.12.0","channels":[{"channel":"acme/ipc","active_version":99999999999999999999}]}`,
		`{"platform":"windows","os_build":"22631","agent_version":"7.12.0","events":[{"seq":4,"type":"actions","counts":{"block":1e300}}]}`,
		`{"platform":"windows","os_build":"22631","agent_version":"7.12.0","events":[{"seq":5,"type":"applied","time":"0000-01-01T00:00:00Z"}]}`,
		`{"platform":"windows","os_build":"22631","agent_version":"7.12.0","device_id":"dev-other"}`,
		`{"platform":"windows","agent_version":"7.12.0","unknown":true}`,
		`{"platform":`,
		`[]`,
		`null`,
		``,
		"\xff\xfe{}",
	} {
		f.Add([]byte(seed))
	}
	e := newEnv(f, "")
	d := e.enroll(f, "7.12.0")
	h := e.srv.Handler()
	f.Fuzz(func(t *testing.T, body []byte) {
		req := httptest.NewRequest("POST", "/v1/checkin", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+d.cred)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("status %d for %q\n%s", rec.Code, body, rec.Body)
		}
		if !json.Valid(rec.Body.Bytes()) {
			t.Fatalf("status %d with a body that is not JSON: %q", rec.Code, rec.Body)
		}
		if rec.Code == http.StatusOK {
			var resp struct {
				Channels []json.RawMessage `json:"channels"`
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &resp); err != nil || resp.Channels == nil {
				t.Fatalf("200 without a channels list (%v): %s", err, rec.Body)
			}
			return
		}
		var ae apiError
		if err := json.Unmarshal(rec.Body.Bytes(), &ae); err != nil || ae.Error == "" || ae.Detail == "" {
			t.Fatalf("status %d without error and detail (%v): %s", rec.Code, err, rec.Body)
		}
	})
}
