package agent

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// StatusFile is where the running agent notes its contact with the server,
// for `ringfence-agent status`.
const StatusFile = "status.json"

// Status is the running agent's contact with the server.
type Status struct {
	LastCheckin time.Time `json:"last_checkin,omitzero"`
	NextCheckin time.Time `json:"next_checkin,omitzero"`
	Failures    int       `json:"failures,omitempty"` // check-ins failed in a row
	LastError   string    `json:"last_error,omitempty"`
	// AgentVersion is the version the last check-in reported: the
	// running build's, which changes as the agent updates itself.
	AgentVersion string `json:"agent_version,omitempty"`
}

// ReadStatus reads the status file (zero before the first check-in).
func ReadStatus(dir string) (Status, error) {
	var s Status
	b, err := os.ReadFile(filepath.Join(dir, StatusFile))
	if errors.Is(err, os.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return s, err
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return s, fmt.Errorf("%s: %w", filepath.Join(dir, StatusFile), err)
	}
	return s, nil
}

func (a *Agent) setStatus(change func(*Status)) {
	a.mu.Lock()
	defer a.mu.Unlock()
	change(&a.status)
	b, _ := json.Marshal(a.status)
	if err := writeFileAtomic(a.cfg.Data, StatusFile, b); err != nil {
		a.log.Warn("status not written", "err", err)
	}
}

// ChannelStatus is one channel as `ringfence-agent status` shows it.
type ChannelStatus struct {
	Channel       string `json:"channel"` // vendor/channel
	ActiveVersion uint64 `json:"active_version"`
	LKGVersion    uint64 `json:"lkg_version"`
	Slot          Slot   `json:"slot"`
	State         State  `json:"state"`
	// Pending is the version on probation, PendingAttempts how many
	// starts it has survived.
	Pending         uint64 `json:"pending_version,omitempty"`
	PendingAttempts int    `json:"pending_attempts,omitempty"`
	// Shadow: the active version runs in shadow, the last-known-good is
	// enforced.
	Shadow    bool     `json:"shadow,omitempty"`
	Refused   []uint64 `json:"refused,omitempty"`
	LastError string   `json:"last_error,omitempty"`
}

// Report is everything `ringfence-agent status` shows.
type Report struct {
	DeviceID     string          `json:"device_id"`
	Server       string          `json:"server"`
	AgentVersion string          `json:"agent_version"`
	Channels     []ChannelStatus `json:"channels"`
	QueuedEvents int             `json:"queued_events"`
	// LastSeq is the last event sequence number the agent handed out;
	// the server's device view shows the highest it stored.
	LastSeq uint64 `json:"last_seq"`
	Status
}

// ReadReport reads a data directory's state without disturbing a running
// agent: the journal and status files are replaced atomically, so a reader
// sees a whole old or new version.
func ReadReport(dir string) (*Report, error) {
	id, err := LoadIdentity(dir)
	if err != nil {
		return nil, err
	}
	j, err := LoadJournal(dir)
	if err != nil {
		return nil, err
	}
	st, err := ReadStatus(dir)
	if err != nil {
		return nil, err
	}
	r := &Report{DeviceID: id.DeviceID, Server: id.Server, AgentVersion: cmp.Or(st.AgentVersion, id.AgentVersion), Channels: []ChannelStatus{}, Status: st}
	for _, name := range j.Names() {
		ch := j.Channels[name]
		cs := ChannelStatus{Channel: name, ActiveVersion: ch.ActiveVersion, LKGVersion: ch.LKGVersion, Slot: ch.ActiveSlot, State: ch.State,
			Shadow: ch.Shadow, Refused: ch.Refused, LastError: ch.LastError}
		if ch.Pending != nil {
			cs.Pending, cs.PendingAttempts = ch.Pending.Version, ch.Pending.Attempts
		}
		r.Channels = append(r.Channels, cs)
	}
	if b, err := os.ReadFile(filepath.Join(dir, QueueFile)); err == nil {
		if last, evs, _, err := decodeQueue(b); err == nil {
			r.QueuedEvents, r.LastSeq = len(evs), last
		}
	}
	return r, nil
}
