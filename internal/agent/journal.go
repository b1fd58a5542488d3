package agent

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/ringfence/ringfence/internal/protocol"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// JournalFile is the apply journal's name in the agent's data directory.
const JournalFile = "journal.json"

// journalSchema is the journal format this agent writes and reads. A
// journal from a newer agent is an error rather than a guess: after a
// downgrade the operator must decide, not the parser.
const journalSchema = 1

// Slot is one of the two content slots of a channel. New content is
// always staged into the slot that does not hold the last-known-good
// version, so the version to fall back to is never overwritten.
type Slot string

const (
	SlotNone Slot = "" // nothing installed
	SlotA    Slot = "a"
	SlotB    Slot = "b"
)

// Other is the slot that is not s; SlotNone for SlotNone.
func (s Slot) Other() Slot {
	switch s {
	case SlotA:
		return SlotB
	case SlotB:
		return SlotA
	}
	return SlotNone
}

// State is a channel's state as the server sees it in check-ins; the
// strings are the wire values.
type State string

const (
	// StateNone: nothing was ever installed on the channel.
	StateNone State = protocol.StateNone
	// StateActive: the active version is confirmed healthy (it is the
	// last-known-good).
	StateActive State = protocol.StateActive
	// StatePending: an activation is journaled but the worker has not run
	// it yet.
	StatePending State = protocol.StatePending
	// StateProbation: the worker runs the new version and it has not yet
	// run a full probation period.
	StateProbation State = protocol.StateProbation
	// StateReverted: the agent went back to last-known-good by itself and
	// refuses the version it left until the server offers a newer one.
	StateReverted State = protocol.StateReverted
)

// Journal is the agent's apply journal: what each channel runs, what it
// falls back to, and the activation on probation. Use NewJournal or
// LoadJournal. It belongs to the agent's main loop and is not safe for
// concurrent use.
type Journal struct {
	Version  int                      `json:"version"`  // schema, 1
	Channels map[string]*ChannelState `json:"channels"` // by "vendor/channel"
}

// ChannelState is one channel's entry in the journal.
type ChannelState struct {
	// Name is the "vendor/channel" key, filled in by LoadJournal and
	// Journal.Channel for the reasons the decisions give.
	Name string `json:"-"`
	// Kind is KindBuild for the channel of the agent's own builds (the
	// launcher runs its active version); "" for content.
	Kind string `json:"kind,omitempty"`

	ActiveVersion uint64 `json:"active_version"` // 0: none
	ActiveSlot    Slot   `json:"active_slot"`
	LKGVersion    uint64 `json:"lkg_version"` // 0: none confirmed yet
	LKGSlot       Slot   `json:"lkg_slot"`
	// Pending is the activation not yet confirmed healthy; it is the
	// active version while it exists.
	Pending *Pending `json:"pending"`
	State   State    `json:"state"`
	// Shadow: the active version runs in shadow (the server's
	// ChannelDesired.Shadow): the worker evaluates it and reports what it
	// would have done, and enforces the last-known-good (or nothing). It
	// stays on probation as any activation does, but a healthy shadow
	// version does not become last-known-good until the server has it
	// enforced (Enforce).
	Shadow bool `json:"shadow,omitempty"`
	// Refused are versions this device reverted; they are refused until
	// the server offers a version newer than all of them.
	Refused   []uint64 `json:"refused,omitempty"`
	LastError string   `json:"last_error,omitempty"`
}

// Pending is an activation on probation.
type Pending struct {
	Version uint64 `json:"version"`
	Slot    Slot   `json:"slot"`
	// Attempts counts agent starts that found this activation still
	// unconfirmed: each is a run that ended before reaching healthy.
	Attempts int `json:"attempts"`
	// ActivatedAt is when the content last started running: set on
	// activation and again on each start that resumes the probation, so
	// that healthy means one uninterrupted probation period.
	ActivatedAt time.Time `json:"activated_at"`
	// Crashes are the worker's crash times since activation, across
	// agent restarts.
	Crashes []time.Time `json:"crashes,omitempty"`
	// Hangs are the worker's hangs (killed for not answering) since
	// activation, across agent restarts.
	Hangs []time.Time `json:"hangs,omitempty"`
}

// NewJournal is an empty journal: a device with nothing installed.
func NewJournal() *Journal {
	return &Journal{Version: journalSchema, Channels: map[string]*ChannelState{}}
}

// Channel returns the named channel's state, adding an empty one if the
// journal has none.
func (j *Journal) Channel(name string) *ChannelState {
	if j.Channels == nil {
		j.Channels = map[string]*ChannelState{}
	}
	ch, ok := j.Channels[name]
	if !ok {
		ch = &ChannelState{}
		j.Channels[name] = ch
	}
	ch.Name = name
	return ch
}

// Names are the journal's channels in order, so that decisions and
// errors come out the same way every time.
func (j *Journal) Names() []string {
	names := make([]string, 0, len(j.Channels))
	for name := range j.Channels {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// LoadJournal reads dir's journal. A missing journal is an empty one (a
// new device). A journal that cannot be read is an error, never an empty
// journal: silently starting over would forget an activation on
// probation, which is exactly what must survive a crash.
func LoadJournal(dir string) (*Journal, error) {
	path := filepath.Join(dir, JournalFile)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return NewJournal(), nil
	}
	if err != nil {
		return nil, fmt.Errorf("load journal: %w", err)
	}
	j, err := decodeJournal(data)
	if err != nil {
		return nil, fmt.Errorf("load journal %s: %w", path, err)
	}
	return j, nil
}

// Save writes the journal to dir atomically and durably. It refuses a
// journal that LoadJournal would refuse, so a bug cannot leave a device
// whose agent can no longer start.
func (j *Journal) Save(dir string) error {
	j.Version = journalSchema
	if err := j.validate(); err != nil {
		return fmt.Errorf("save journal: %w", err)
	}
	data, err := json.MarshalIndent(j, "", "  ")
	if err != nil {
		return fmt.Errorf("save journal: %w", err)
	}
	if err := writeFileAtomic(dir, JournalFile, append(data, '\n')); err != nil {
		return fmt.Errorf("save journal: %w", err)
	}
	return nil
}

func decodeJournal(data []byte) (*Journal, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, errors.New("empty file")
	}
	var probe struct {
		Version *int `json:"version"`
	}
	if err := json.Unmarshal(data, &probe); err != nil {
		return nil, err
	}
	if probe.Version == nil {
		return nil, errors.New("no schema version")
	}
	if *probe.Version != journalSchema {
		return nil, fmt.Errorf("schema version %d; this agent reads version %d", *probe.Version, journalSchema)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var j Journal
	if err := dec.Decode(&j); err != nil { // json.Unmarshal above refused trailing data
		return nil, err
	}
	if j.Channels == nil {
		j.Channels = map[string]*ChannelState{}
	}
	for name, ch := range j.Channels {
		if ch != nil {
			ch.Name = name
		}
	}
	if err := j.validate(); err != nil {
		return nil, err
	}
	return &j, nil
}

func (j *Journal) validate() error {
	for _, name := range j.Names() {
		if err := j.Channels[name].validate(name); err != nil {
			return fmt.Errorf("channel %s: %w", name, err)
		}
	}
	return nil
}

// validate checks the invariants the recovery decisions rely on; a
// journal breaking them would have the agent revert to the wrong slot.
func (ch *ChannelState) validate(name string) error {
	if !protocol.ValidChannel(name) {
		return errors.New("not VENDOR/CHANNEL")
	}
	if ch == nil {
		return errors.New("null")
	}
	if err := checkInstalled("active", ch.ActiveVersion, ch.ActiveSlot); err != nil {
		return err
	}
	if err := checkInstalled("lkg", ch.LKGVersion, ch.LKGSlot); err != nil {
		return err
	}
	if ch.Kind != "" && ch.Kind != KindBuild {
		return fmt.Errorf("kind %q is not %q", ch.Kind, KindBuild)
	}
	if ch.Shadow {
		switch {
		case ch.Kind == KindBuild:
			return errors.New("an agent build cannot run in shadow")
		case ch.ActiveVersion == 0 || ch.ActiveVersion == ch.LKGVersion || ch.ActiveSlot == ch.LKGSlot:
			return fmt.Errorf("shadow version %d in slot %q is not apart from last-known-good %d in slot %q",
				ch.ActiveVersion, ch.ActiveSlot, ch.LKGVersion, ch.LKGSlot)
		}
	}
	switch ch.State {
	case StateNone, StateActive, StatePending, StateProbation, StateReverted:
	default:
		return fmt.Errorf("state %q is not one of active, pending, probation, reverted", ch.State)
	}
	p := ch.Pending
	if p == nil {
		if ch.State == StatePending || ch.State == StateProbation {
			return fmt.Errorf("state %s without a pending activation", ch.State)
		}
		return nil
	}
	if ch.State != StatePending && ch.State != StateProbation {
		return fmt.Errorf("pending activation in state %q", ch.State)
	}
	if p.Version == 0 || (p.Slot != SlotA && p.Slot != SlotB) {
		return fmt.Errorf("pending activation %d in slot %q", p.Version, p.Slot)
	}
	if p.Version != ch.ActiveVersion || p.Slot != ch.ActiveSlot {
		return fmt.Errorf("pending activation %d in slot %s is not the active %d in slot %q", p.Version, p.Slot, ch.ActiveVersion, ch.ActiveSlot)
	}
	if p.Slot == ch.LKGSlot {
		return fmt.Errorf("pending activation %d is in slot %s, which holds last-known-good %d", p.Version, p.Slot, ch.LKGVersion)
	}
	if p.Attempts < 0 {
		return fmt.Errorf("pending activation %d: %d attempts", p.Version, p.Attempts)
	}
	return nil
}

func checkInstalled(what string, v uint64, s Slot) error {
	switch {
	case s != SlotNone && s != SlotA && s != SlotB:
		return fmt.Errorf("%s_slot %q is not a or b", what, s)
	case (v == 0) != (s == SlotNone):
		return fmt.Errorf("%s_version %d with %s_slot %q", what, v, what, s)
	}
	return nil
}

// validChannel matches the server's check of a channel id: two names
// joined by "/", each a lower-case letter followed by up to 62 lower-case
// letters, digits, '-' or '_'.
