// Package protocol holds the wire types of the device protocol
// (enrolment and check-in, docs/api.md), shared by the server and the
// agent so the agent does not import the server.
package protocol

import (
	"slices"
	"strings"
	"time"
)

// QuotaHeader, on a 429 answer to a check-in, names the quota the
// check-in went over: QuotaEvents means the device sent more events than
// its allowance, so nothing of the check-in was stored. The agent then
// checks in at once without events (its state, to hear what to run) and
// holds its events back until Retry-After.
const (
	QuotaHeader = "Ringfence-Quota"
	QuotaEvents = "events"
)

// Limits of one check-in, which the server enforces and the agent keeps
// to.
const (
	MaxChannelsPerCheckin = 64
	MaxEventsPerCheckin   = 1000
	// MaxReason is the longest event reason, in bytes.
	MaxReason = 1024
	// MaxActionCount bounds one action count of an actions event.
	MaxActionCount = 1 << 40
)

// Event types a device reports (EventReport.Type).
const (
	EventApplied       = "applied"        // a version was installed and activated
	EventApplyFailed   = "apply-failed"   // installing or activating failed
	EventHealthy       = "healthy"        // a version completed probation
	EventReverted      = "reverted"       // the agent went back to last-known-good
	EventWorkerCrash   = "worker-crash"   // the content worker crashed
	EventUncleanReboot = "unclean-reboot" // the host came back from an unplanned reboot
	EventBootLoop      = "boot-loop"      // repeated starts without reaching healthy
	EventActions       = "actions"        // periodic detection action counts
	// EventShadowActions are the action counts content running in shadow
	// would have had: evaluated, not enforced (ChannelDesired.Shadow).
	EventShadowActions = "shadow-actions"
)

// EventTypes are every event type, in the order above.
var EventTypes = []string{EventApplied, EventApplyFailed, EventHealthy, EventReverted, EventWorkerCrash,
	EventUncleanReboot, EventBootLoop, EventActions, EventShadowActions}

// ActionEvent reports whether t carries action counts.
func ActionEvent(t string) bool { return t == EventActions || t == EventShadowActions }

// KnownEvent reports whether t is an event type of the protocol.
func KnownEvent(t string) bool { return slices.Contains(EventTypes, t) }

// A device's state on a channel (ChannelReport.State); "" is a channel
// on which nothing was ever installed.
const (
	StateNone      = ""
	StateActive    = "active"
	StatePending   = "pending"
	StateProbation = "probation"
	StateReverted  = "reverted"
)

// ChannelStates are every channel state, in the order above.
var ChannelStates = []string{StateNone, StateActive, StatePending, StateProbation, StateReverted}

// KnownState reports whether s is a channel state of the protocol.
func KnownState(s string) bool { return slices.Contains(ChannelStates, s) }

// ValidChannel reports whether id is a channel id, "vendor/channel", each
// part a ValidName.
func ValidChannel(id string) bool {
	v, c, ok := strings.Cut(id, "/")
	return ok && ValidName(v) && ValidName(c)
}

// ValidName reports whether s is a name the protocol accepts for tenants,
// channels and platforms: a lowercase letter, then at most 62 lowercase
// letters, digits, '-' or '_'.
func ValidName(s string) bool {
	if s == "" || len(s) > 63 || s[0] < 'a' || s[0] > 'z' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// EnrollRequest exchanges an organisation's enrolment token for a device
// identity.
type EnrollRequest struct {
	Token        string `json:"token"`
	Platform     string `json:"platform"`
	OSBuild      string `json:"os_build"`
	AgentVersion string `json:"agent_version"`
	Hostname     string `json:"hostname,omitempty"`
}

// EnrollResponse is the device's identity; the credential is shown once.
type EnrollResponse struct {
	DeviceID        string `json:"device_id"`
	Credential      string `json:"credential"`
	Org             string `json:"org"`
	CheckinInterval int    `json:"checkin_interval_s"`
}

// CheckinRequest is what a device sends.
type CheckinRequest struct {
	DeviceID     string          `json:"device_id,omitempty"`
	Platform     string          `json:"platform"`
	OSBuild      string          `json:"os_build"`
	AgentVersion string          `json:"agent_version"`
	Channels     []ChannelReport `json:"channels"`
	Events       []EventReport   `json:"events"`
	Health       string          `json:"health,omitempty"` // ok, degraded
}

// ChannelReport is a device's state on one channel.
type ChannelReport struct {
	Channel       string `json:"channel"`
	ActiveVersion uint64 `json:"active_version"`
	LKGVersion    uint64 `json:"lkg_version"`
	State         string `json:"state"` // active, pending, probation, reverted
	// Shadow: the active version runs in shadow; the last-known-good is
	// the one enforced.
	Shadow bool `json:"shadow,omitempty"`
}

// EventReport is one queued device event; Seq increases with every event
// on the device (gaps allowed) and makes retries harmless.
type EventReport struct {
	Seq     uint64           `json:"seq"`
	Time    time.Time        `json:"time"`
	Type    string           `json:"type"`
	Channel string           `json:"channel,omitempty"`
	Version uint64           `json:"version,omitempty"`
	Reason  string           `json:"reason,omitempty"`
	Counts  map[string]int64 `json:"counts,omitempty"`
}

// CheckinResponse is what the server answers.
type CheckinResponse struct {
	Channels     []ChannelDesired `json:"channels"`
	NextCheckinS int              `json:"next_checkin_s"`
	AckSeq       uint64           `json:"ack_seq"`
}

// ChannelDesired is the version a device should run on a channel.
type ChannelDesired struct {
	Channel        string `json:"channel"`
	DesiredVersion uint64 `json:"desired_version"`
	Release        string `json:"release,omitempty"`
	Reason         string `json:"reason"`
	// Shadow asks the device to run DesiredVersion in shadow: evaluate it
	// and report what it would have done (shadow-actions events) while
	// enforcing its last-known-good. A device that already enforces the
	// version keeps enforcing it.
	Shadow   bool      `json:"shadow,omitempty"`
	Artifact *Artifact `json:"artifact,omitempty"`
}

// Artifact says where and what to download.
type Artifact struct {
	URL    string `json:"url"`
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
	Target string `json:"target"` // the signed-metadata target path
}
