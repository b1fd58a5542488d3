package content

import (
	"fmt"
	"strings"
)

// Level says whether a finding rejects the bundle.
type Level string

const (
	LevelError   Level = "error"
	LevelWarning Level = "warning"
)

// Finding is one result of validation or preflight. Every finding names
// the bundle and, where they apply, the instance, the input field and the
// agent versions concerned; Message gives the reason.
type Finding struct {
	Level      Level    `json:"level"`
	Rule       string   `json:"rule"`
	Bundle     string   `json:"bundle"`
	Instance   string   `json:"instance,omitempty"`
	FieldIndex int      `json:"field_index,omitempty"`
	FieldName  string   `json:"field_name,omitempty"`
	Agents     []string `json:"agents,omitempty"`
	Message    string   `json:"message"`
	Pos        Pos      `json:"-"`
	Location   string   `json:"location,omitempty"`
}

// String renders the finding as one line:
// "bundle acme/ipc@291: instance c2-pipe-7: criterion on input 21 ...".
func (f Finding) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "bundle %s: ", f.Bundle)
	if f.Instance != "" {
		fmt.Fprintf(&b, "instance %s: ", f.Instance)
	}
	b.WriteString(f.Message)
	return b.String()
}

// Findings is a list of findings with helpers for the verdict.
type Findings []Finding

// Errors counts the findings that reject.
func (fs Findings) Errors() int {
	n := 0
	for _, f := range fs {
		if f.Level == LevelError {
			n++
		}
	}
	return n
}

// findingSink collects findings for one bundle.
type findingSink struct {
	bundle string
	out    Findings
}

func (s *findingSink) add(level Level, rule string, pos Pos, inst string, field *Field, agents []string, format string, args ...any) {
	f := Finding{Level: level, Rule: rule, Bundle: s.bundle, Instance: inst, Agents: agents,
		Message: fmt.Sprintf(format, args...), Pos: pos}
	if field != nil {
		f.FieldIndex, f.FieldName = field.Index, field.Name
	}
	if pos.File != "" {
		f.Location = pos.String()
	}
	s.out = append(s.out, f)
}
