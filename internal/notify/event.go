// Package notify is Ringfence's webhook notifications: the events (CloudEvents
// 1.0 in structured JSON mode, or a Slack-compatible {"text": ...} body), the
// signature every delivery carries and how a receiver verifies it, the
// retry schedule, and the HTTP sender. The server keeps the subscriptions
// and the outbox (package store) and runs the sender loop; what is here is
// pure but for Sender, so that receivers and tests can use it as it is.
package notify

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
)

// TypePrefix makes an event type a CloudEvents type: release.halted is
// sent as dev.ringfence.release.halted.
const TypePrefix = "dev.ringfence."

// The event types a subscription may ask for.
const (
	ReleaseHalted           = "release.halted"
	ReleaseAwaitingApproval = "release.awaiting-approval"
	ReleaseCompleted        = "release.completed"
	ReleaseRolledBack       = "release.rolled-back"
	KillSwitchEngaged       = "kill-switch.engaged"
	KillSwitchReleased      = "kill-switch.released"
	AuditVerifyFailed       = "audit.verification-failed"
)

// Types are every event type, in the order the documentation lists them.
var Types = []string{ReleaseHalted, ReleaseAwaitingApproval, ReleaseCompleted, ReleaseRolledBack,
	KillSwitchEngaged, KillSwitchReleased, AuditVerifyFailed}

// KnownType reports whether t is an event type (without the prefix).
func KnownType(t string) bool { return slices.Contains(Types, t) }

// Formats of a delivery's body.
const (
	FormatCloudEvents = "cloudevents"
	FormatSlack       = "slack"
)

// Data is what an event carries: the release or the kill switch (or the
// audit entry) it is about. Fields that do not apply are omitted.
type Data struct {
	Release string `json:"release,omitempty"`
	Channel string `json:"channel,omitempty"`
	Version uint64 `json:"version,omitempty"`
	State   string `json:"state,omitempty"`
	Wave    *int   `json:"wave,omitempty"`
	// WaveName is the plan's name for Wave (canary, ...).
	WaveName string `json:"wave_name,omitempty"`
	Reason   string `json:"reason,omitempty"`
	// Actor is who made the change: a person's token, or "controller".
	Actor string `json:"actor,omitempty"`
	// Scope is a kill switch's: "*" or a channel.
	Scope string `json:"scope,omitempty"`
	// AuditSeq is the first audit entry that does not verify.
	AuditSeq int64 `json:"audit_seq,omitempty"`
}

// Event is a CloudEvents 1.0 event in structured mode.
type Event struct {
	SpecVersion     string    `json:"specversion"`
	ID              string    `json:"id"`
	Source          string    `json:"source"`
	Type            string    `json:"type"`
	Time            time.Time `json:"time"`
	Subject         string    `json:"subject,omitempty"`
	DataContentType string    `json:"datacontenttype"`
	Data            Data      `json:"data"`
}

// NewEvent builds an event of type typ (without the prefix). id must be
// the same every time the same change is notified: receivers de-duplicate
// on it.
func NewEvent(id, typ, source, subject string, at time.Time, d Data) Event {
	return Event{SpecVersion: "1.0", ID: id, Source: source, Type: TypePrefix + typ, Time: at.UTC(),
		Subject: subject, DataContentType: "application/json", Data: d}
}

// ShortType is the event's type without the prefix.
func (e Event) ShortType() string { return strings.TrimPrefix(e.Type, TypePrefix) }

// Body renders the event in a format, with the content type to send it
// with.
func (e Event) Body(format string) (body []byte, contentType string, err error) {
	switch format {
	case FormatCloudEvents, "":
		b, err := json.Marshal(e)
		return b, "application/cloudevents+json", err
	case FormatSlack:
		b, err := json.Marshal(map[string]string{"text": e.Text()})
		return b, "application/json", err
	}
	return nil, "", fmt.Errorf("format %q: want %s or %s", format, FormatCloudEvents, FormatSlack)
}

// Text is the event in one line for a person (a Slack message).
func (e Event) Text() string {
	d := e.Data
	var b strings.Builder
	switch t := e.ShortType(); {
	case strings.HasPrefix(t, "release."):
		fmt.Fprintf(&b, "Ringfence: release %s (%s@%d) is %s", d.Release, d.Channel, d.Version, d.State)
		if d.WaveName != "" {
			fmt.Fprintf(&b, " in wave %s", d.WaveName)
		}
	case t == KillSwitchEngaged || t == KillSwitchReleased:
		what := "the global kill switch"
		if d.Scope != "*" {
			what = "the kill switch of " + d.Scope
		}
		fmt.Fprintf(&b, "Ringfence: %s is %s", what, strings.TrimPrefix(t, "kill-switch."))
		if d.Actor != "" {
			fmt.Fprintf(&b, " by %s", d.Actor)
		}
	case t == AuditVerifyFailed:
		fmt.Fprintf(&b, "Ringfence: the audit log does not verify at entry %d", d.AuditSeq)
	default:
		fmt.Fprintf(&b, "Ringfence: %s", t)
	}
	if d.Reason != "" {
		fmt.Fprintf(&b, ": %s", d.Reason)
	}
	return b.String()
}
