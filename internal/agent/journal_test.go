package agent

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 27, 1, 50, 0, 0, time.UTC)

// sampleJournal has one channel on probation over a last-known-good, one
// reverted with nothing to fall back to, and one confirmed.
func sampleJournal() *Journal {
	j := NewJournal()
	ipc := j.Channel("acme/ipc")
	*ipc = ChannelState{
		Name: "acme/ipc", ActiveVersion: 293, ActiveSlot: SlotB, LKGVersion: 292, LKGSlot: SlotA,
		Pending: &Pending{Version: 293, Slot: SlotB, Attempts: 1, ActivatedAt: t0, Crashes: []time.Time{t0.Add(time.Minute)}},
		State:   StateProbation,
	}
	fw := j.Channel("acme/fw")
	*fw = ChannelState{Name: "acme/fw", State: StateReverted, Refused: []uint64{7}, LastError: "boot loop: acme/fw@7 started 3 times"}
	dns := j.Channel("contoso/dns-rules")
	*dns = ChannelState{Name: "contoso/dns-rules", ActiveVersion: 12, ActiveSlot: SlotA, LKGVersion: 12, LKGSlot: SlotA, State: StateActive}
	return j
}

func TestJournalRoundTrip(t *testing.T) {
	dir := t.TempDir()
	want := sampleJournal()
	if err := want.Save(dir); err != nil {
		t.Fatalf("Save: %v", err)
	}
	got, err := LoadJournal(dir)
	if err != nil {
		t.Fatalf("LoadJournal: %v", err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("round trip:\ngot  %+v\nwant %+v", got.Channels, want.Channels)
	}
	if _, err := os.Stat(filepath.Join(dir, JournalFile+".tmp")); !os.IsNotExist(err) {
		t.Errorf("temporary file after Save: stat says %v, want it gone", err)
	}
}

func TestJournalWireNames(t *testing.T) {
	dir := t.TempDir()
	if err := sampleJournal().Save(dir); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, JournalFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"version": 1`, `"active_version": 293`, `"active_slot": "b"`, `"lkg_version": 292`,
		`"lkg_slot": "a"`, `"state": "probation"`, `"attempts": 1`, `"activated_at": "2026-11-27T01:50:00Z"`,
		`"crashes": [`, `"refused": [`, `"last_error": "boot loop`, `"pending": null`} {
		if !strings.Contains(string(data), want) {
			t.Errorf("journal lacks %s:\n%s", want, data)
		}
	}
}

func TestLoadJournalMissingIsEmpty(t *testing.T) {
	j, err := LoadJournal(t.TempDir())
	if err != nil {
		t.Fatalf("LoadJournal: %v", err)
	}
	if j.Version != 1 || len(j.Channels) != 0 {
		t.Errorf("got version %d with %d channels, want an empty version-1 journal", j.Version, len(j.Channels))
	}
}

// A crash between writing the temporary file and renaming it leaves the
// temporary file behind: the journal must be the previous one, whatever
// the leftover holds.
func TestJournalInterruptedWrite(t *testing.T) {
	tests := []struct {
		name     string
		leftover string
	}{
		{"torn-leftover", `{"version":1,"channels":{"acme/ipc":{"active_vers`},
		{"complete-leftover", `{"version":1,"channels":{}}`},
		{"empty-leftover", ``},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := sampleJournal().Save(dir); err != nil {
				t.Fatal(err)
			}
			tmp := filepath.Join(dir, JournalFile+".tmp")
			if err := os.WriteFile(tmp, []byte(tc.leftover), 0o600); err != nil {
				t.Fatal(err)
			}
			got, err := LoadJournal(dir)
			if err != nil {
				t.Fatalf("LoadJournal with a leftover: %v", err)
			}
			if !reflect.DeepEqual(got, sampleJournal()) {
				t.Errorf("journal after an interrupted write:\ngot  %+v\nwant the previous one", got.Channels)
			}
			// The next save goes through the leftover.
			got.Channel("acme/ipc").Pending.Attempts = 2
			if err := got.Save(dir); err != nil {
				t.Fatalf("Save over a leftover: %v", err)
			}
			again, err := LoadJournal(dir)
			if err != nil {
				t.Fatal(err)
			}
			if n := again.Channel("acme/ipc").Pending.Attempts; n != 2 {
				t.Errorf("attempts after saving over a leftover: got %d, want 2", n)
			}
		})
	}
}

// A write that fails half way, here because the temporary file cannot be
// created, leaves the previous journal in place.
func TestJournalFailedSaveKeepsPrevious(t *testing.T) {
	dir := t.TempDir()
	if err := sampleJournal().Save(dir); err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(dir, JournalFile+".tmp")
	if err := os.Mkdir(tmp, 0o700); err != nil {
		t.Fatal(err)
	}
	changed := sampleJournal()
	changed.Channel("acme/ipc").Pending.Attempts = 2
	if err := changed.Save(dir); err == nil || !strings.Contains(err.Error(), tmp) {
		t.Fatalf("Save with the temporary file blocked: got %v, want an error naming %s", err, tmp)
	}
	got, err := LoadJournal(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, sampleJournal()) {
		t.Errorf("journal after a failed save:\ngot  %+v\nwant the previous one", got.Channels)
	}
}

func TestLoadJournalCorrupt(t *testing.T) {
	ch := func(body string) string { return `{"version":1,"channels":{"acme/ipc":` + body + `}}` }
	tests := []struct {
		name, data, want string
	}{
		{"empty", "", "empty file"},
		{"truncated", `{"version":1,"channels":{"acme/ipc":{"active_ver`, "unexpected end of JSON input"},
		{"not-json", "journal", "invalid character"},
		{"no-version", `{"channels":{}}`, "no schema version"},
		{"newer-schema", `{"version":2,"channels":{}}`, "schema version 2; this agent reads version 1"},
		{"unknown-field", `{"version":1,"channels":{},"slots":3}`, `unknown field "slots"`},
		{"trailing-data", `{"version":1,"channels":{}} {}`, "after top-level value"},
		{"wrong-type", ch(`{"active_version":"293"}`), "cannot unmarshal string"},
		{"bad-channel-name", `{"version":1,"channels":{"ACME":{"state":"active"}}}`, "channel ACME: not VENDOR/CHANNEL"},
		{"null-channel", ch(`null`), "channel acme/ipc: null"},
		{"bad-slot", ch(`{"active_version":1,"active_slot":"c","state":"active"}`), `active_slot "c" is not a or b`},
		{"version-without-slot", ch(`{"lkg_version":1,"state":"active"}`), `lkg_version 1 with lkg_slot ""`},
		{"bad-state", ch(`{"state":"healthy"}`), `state "healthy" is not one of`},
		{"probation-without-pending", ch(`{"active_version":1,"active_slot":"a","state":"probation"}`), "state probation without a pending activation"},
		{"pending-in-active-state", ch(`{"active_version":1,"active_slot":"a","state":"active","pending":{"version":1,"slot":"a"}}`), `pending activation in state "active"`},
		{"pending-not-active", ch(`{"active_version":2,"active_slot":"a","state":"pending","pending":{"version":1,"slot":"a"}}`), "is not the active 2"},
		{"shadow-over-lkg", ch(`{"active_version":2,"active_slot":"a","lkg_version":2,"lkg_slot":"a","state":"active","shadow":true}`), "is not apart from last-known-good"},
		{"shadow-of-nothing", ch(`{"state":"","shadow":true}`), "shadow version 0"},
		{"shadow-build", ch(`{"kind":"build","active_version":2,"active_slot":"b","lkg_version":1,"lkg_slot":"a","state":"active","shadow":true}`), "an agent build cannot run in shadow"},
		{"pending-over-lkg", ch(`{"active_version":2,"active_slot":"a","lkg_version":1,"lkg_slot":"a","state":"pending","pending":{"version":2,"slot":"a"}}`), "which holds last-known-good 1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, JournalFile)
			if err := os.WriteFile(path, []byte(tc.data), 0o600); err != nil {
				t.Fatal(err)
			}
			j, err := LoadJournal(dir)
			if err == nil {
				t.Fatalf("LoadJournal = %+v, want an error", j)
			}
			if !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q: want it to name %s and say %q", err, path, tc.want)
			}
		})
	}
}

// Save refuses what LoadJournal would refuse, and leaves the previous
// journal as it was.
func TestSaveRefusesInvalidJournal(t *testing.T) {
	dir := t.TempDir()
	if err := sampleJournal().Save(dir); err != nil {
		t.Fatal(err)
	}
	bad := sampleJournal()
	bad.Channel("acme/ipc").Pending.Slot = SlotA // the last-known-good's slot
	bad.Channel("acme/ipc").ActiveSlot = SlotA
	err := bad.Save(dir)
	if err == nil || !strings.Contains(err.Error(), "which holds last-known-good 292") {
		t.Fatalf("Save: got %v, want the pending-over-lkg error", err)
	}
	got, err := LoadJournal(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, sampleJournal()) {
		t.Errorf("journal after a refused save:\ngot  %+v\nwant the previous one", got.Channels)
	}
}

func FuzzDecodeJournal(f *testing.F) {
	dir := f.TempDir()
	if err := sampleJournal().Save(dir); err != nil {
		f.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, JournalFile))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(data)
	f.Add([]byte(`{"version":1,"channels":{}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		j, err := decodeJournal(data)
		if err != nil {
			return
		}
		// Whatever loads must save and load back the same.
		dir := t.TempDir()
		if err := j.Save(dir); err != nil {
			t.Fatalf("a journal that loads does not save: %v", err)
		}
		again, err := LoadJournal(dir)
		if err != nil {
			t.Fatalf("a saved journal does not load: %v", err)
		}
		// Compared as JSON: a time's zone offset survives, its *Location
		// pointer does not.
		a, _ := json.Marshal(again)
		b, _ := json.Marshal(j)
		if !bytes.Equal(a, b) {
			t.Errorf("round trip changed the journal:\ngot  %s\nwant %s", a, b)
		}
	})
}
