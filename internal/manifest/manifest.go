// Package manifest holds the objects people keep in files and manage with
// `ringfence apply` and `ringfence get`: channels, organisations' policies
// and budgets, kill switches and webhook subscriptions. It parses and
// checks the files (against schema.json, with errors located by file and
// line), and plans the changes that bring a server's state to what the
// files declare. It does no I/O with the server: the CLI fetches the
// state and makes the changes through the API, so every change is
// authorised and audited as if made by hand.
package manifest

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
	jskind "github.com/santhosh-tekuri/jsonschema/v6/kind"
	"go.yaml.in/yaml/v3"
	"golang.org/x/text/language"
	"golang.org/x/text/message"

	"github.com/ringfence/ringfence/internal/rollout"
)

// Schema is the JSON Schema of one object (docs/objects.schema.json is a
// copy, for people and editors).
//
//go:embed schema.json
var Schema []byte

// Kinds of object, in the order apply makes changes: a channel exists
// before a policy names it.
const (
	KindChannel    = "Channel"
	KindPlan       = "Plan"
	KindPolicy     = "Policy"
	KindBudget     = "Budget"
	KindKillSwitch = "KillSwitch"
	KindWebhook    = "Webhook"
)

// Kinds are every kind, in apply's order.
var Kinds = []string{KindChannel, KindPlan, KindPolicy, KindBudget, KindWebhook, KindKillSwitch}

// Object is one declared object. Which fields belong to which kind is the
// schema's business; Check enforces it.
type Object struct {
	Kind string `json:"kind" yaml:"kind"`

	// Channel (vendor, name, type, category, unpausable); Webhook (vendor).
	Vendor     string `json:"vendor,omitempty" yaml:"vendor,omitempty"`
	Name       string `json:"name,omitempty" yaml:"name,omitempty"`
	Type       string `json:"type,omitempty" yaml:"type,omitempty"`
	Category   string `json:"category,omitempty" yaml:"category,omitempty"`
	Unpausable bool   `json:"unpausable,omitempty" yaml:"unpausable,omitempty"`

	// Policy (org, channel, track, windows); Budget (org, hourly_cap_bp);
	// Webhook (org).
	Org         string   `json:"org,omitempty" yaml:"org,omitempty"`
	Channel     string   `json:"channel,omitempty" yaml:"channel,omitempty"`
	Track       string   `json:"track,omitempty" yaml:"track,omitempty"`
	Windows     []string `json:"windows,omitempty" yaml:"windows,omitempty"`
	HourlyCapBP *int     `json:"hourly_cap_bp,omitempty" yaml:"hourly_cap_bp,omitempty"`

	// Plan (vendor, name, plan): the plan as JSON values, as a release's.
	Plan map[string]any `json:"plan,omitempty" yaml:"plan,omitempty"`

	// KillSwitch.
	Scope   string `json:"scope,omitempty" yaml:"scope,omitempty"`
	Engaged *bool  `json:"engaged,omitempty" yaml:"engaged,omitempty"`
	Reason  string `json:"reason,omitempty" yaml:"reason,omitempty"`

	// Webhook.
	URL     string   `json:"url,omitempty" yaml:"url,omitempty"`
	Events  []string `json:"events,omitempty" yaml:"events,omitempty"`
	Format  string   `json:"format,omitempty" yaml:"format,omitempty"`
	Enabled *bool    `json:"enabled,omitempty" yaml:"enabled,omitempty"`

	// Source is where it was declared, FILE:LINE; "" for the server's.
	Source string `json:"-" yaml:"-"`
	// ServerID is the server's id of a webhook it reports.
	ServerID string `json:"-" yaml:"-"`
}

// Key names the object: two objects with the same key are the same
// object, and a file may declare each once.
func (o Object) Key() string {
	switch o.Kind {
	case KindChannel:
		return "Channel " + o.Vendor + "/" + o.Name
	case KindPlan:
		return "Plan " + o.Vendor + "/" + o.Name
	case KindPolicy:
		return "Policy " + o.Org + " " + o.Channel
	case KindBudget:
		return "Budget " + o.Org
	case KindKillSwitch:
		return "KillSwitch " + o.Scope
	case KindWebhook:
		return "Webhook " + o.Owner() + " " + o.URL
	}
	return o.Kind
}

// Owner is a webhook's scope in words: "vendor acme", "org contoso" or
// "operator".
func (o Object) Owner() string {
	switch {
	case o.Vendor != "":
		return "vendor " + o.Vendor
	case o.Org != "":
		return "org " + o.Org
	}
	return "operator"
}

// Normal fills in the defaults the server applies, so that what a file
// leaves out compares equal to what the server reports.
func (o Object) Normal() Object {
	switch o.Kind {
	case KindChannel:
		o.Type = cmpOr(o.Type, "content")
		o.Category = cmpOr(o.Category, "detection")
	case KindPolicy:
		o.Windows = slices.Clone(o.Windows)
	case KindPlan:
		// As the server keeps it: defaults filled in, durations spelled
		// one way ("1h" and "60m" are the same plan).
		if p, err := PlanOf(o.Plan); err == nil {
			o.Plan = PlanValues(p)
		}
	case KindWebhook:
		o.Format = cmpOr(o.Format, "cloudevents")
		if o.Enabled == nil {
			t := true
			o.Enabled = &t
		}
		o.Events = slices.Sorted(slices.Values(o.Events))
	}
	return o
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// Default reports whether the object says no more than its absence does:
// a policy on ga with no windows, no budget cap, a released kill switch.
// Prune brings undeclared objects there, and then leaves them alone.
func (o Object) Default() bool {
	switch o.Kind {
	case KindPolicy:
		return o.Track == "ga" && len(o.Windows) == 0
	case KindBudget:
		return o.HourlyCapBP == nil || *o.HourlyCapBP == 0
	case KindKillSwitch:
		return o.Engaged == nil || !*o.Engaged
	}
	return false
}

// Error is a file that cannot be applied, with every problem found, each
// located.
type Error struct{ Problems []string }

func (e *Error) Error() string {
	if len(e.Problems) == 1 {
		return e.Problems[0]
	}
	return fmt.Sprintf("%d problems:\n  %s", len(e.Problems), strings.Join(e.Problems, "\n  "))
}

var schema = func() *jsonschema.Schema {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(Schema))
	if err != nil {
		panic(fmt.Sprintf("manifest: schema.json: %v", err))
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource("objects.json", doc); err != nil {
		panic(fmt.Sprintf("manifest: schema.json: %v", err))
	}
	s, err := c.Compile("objects.json")
	if err != nil {
		panic(fmt.Sprintf("manifest: schema.json: %v", err))
	}
	return s
}()

var printer = message.NewPrinter(language.English)

// MaxFile bounds one file apply reads.
const MaxFile = 4 << 20

// Parse reads the objects of one file, named name in errors: YAML
// documents (JSON is YAML), each one object, checked against the schema
// and the rules the server would apply. An error lists every problem,
// each with its line.
func Parse(name string, r io.Reader) ([]Object, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxFile+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if len(data) > MaxFile {
		return nil, fmt.Errorf("%s: larger than %d MiB", name, MaxFile>>20)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var out []Object
	var problems []string
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v", name, err))
			break
		}
		if len(doc.Content) == 0 || doc.Content[0].Tag == "!!null" {
			continue // an empty document, as after a trailing ---
		}
		o, errs := parseDoc(name, doc.Content[0])
		problems = append(problems, errs...)
		if len(errs) == 0 {
			out = append(out, o)
		}
	}
	if len(problems) > 0 {
		return out, &Error{Problems: problems} // the valid ones too: duplicates among them are problems as well
	}
	return out, nil
}

func parseDoc(name string, n *yaml.Node) (Object, []string) {
	at := func(n *yaml.Node) string { return fmt.Sprintf("%s:%d", name, n.Line) }
	var v any
	if err := n.Decode(&v); err != nil {
		return Object{}, []string{fmt.Sprintf("%s: %v", at(n), err)}
	}
	j, err := json.Marshal(v)
	if err != nil {
		return Object{}, []string{fmt.Sprintf("%s: not an object of plain values: %v", at(n), err)}
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(j))
	if err != nil {
		return Object{}, []string{fmt.Sprintf("%s: %v", at(n), err)}
	}
	var kind string
	if m, ok := v.(map[string]any); ok {
		kind, _ = m["kind"].(string)
	}
	what := "object"
	if kind != "" {
		what = kind
	}
	if err := schema.Validate(inst); err != nil {
		var ve *jsonschema.ValidationError
		if !errors.As(err, &ve) {
			return Object{}, []string{fmt.Sprintf("%s: %v", at(n), err)}
		}
		var out []string
		for _, leaf := range leaves(ve) {
			ptr := "/" + strings.Join(leaf.InstanceLocation, "/")
			node, msg := nodeAt(n, leaf.InstanceLocation), leaf.ErrorKind.LocalizedString(printer)
			switch k := leaf.ErrorKind.(type) {
			case *jskind.AdditionalProperties:
				// Point at the key that is not allowed, not at its object.
				if len(k.Properties) > 0 {
					node = keyAt(node, k.Properties[0])
				}
			case *jskind.Not:
				msg = "vendor and org: a subscription is a vendor's or an organisation's (or, with neither, the operator's), not both"
			}
			out = append(out, fmt.Sprintf("%s: %s %s: %s", at(node), what, ptr, msg))
		}
		slices.Sort(out)
		return Object{}, slices.Compact(out)
	}
	var o Object
	d := json.NewDecoder(bytes.NewReader(j))
	d.DisallowUnknownFields()
	if err := d.Decode(&o); err != nil {
		return Object{}, []string{fmt.Sprintf("%s: %s: %v", at(n), what, err)}
	}
	o.Source = at(n)
	if errs := check(o, n, at); len(errs) > 0 {
		return Object{}, errs
	}
	return o, nil
}

// check applies the rules the schema cannot say, as the server does.
func check(o Object, n *yaml.Node, at func(*yaml.Node) string) []string {
	var out []string
	field := func(path ...string) string { return at(nodeAt(n, path)) }
	if o.Kind == KindPlan {
		if _, err := PlanOf(o.Plan); err != nil {
			out = append(out, fmt.Sprintf("%s: Plan /plan: %v", field("plan"), err))
		}
	}
	if o.Kind == KindPolicy {
		if _, err := rollout.ParseTrack(o.Track); err != nil {
			out = append(out, fmt.Sprintf("%s: Policy /track: %v", field("track"), err))
		}
		for i, w := range o.Windows {
			if _, err := rollout.ParseWindow(w); err != nil {
				out = append(out, fmt.Sprintf("%s: Policy /windows/%d: %v", field("windows", fmt.Sprint(i)), i, err))
			}
		}
	}
	return out
}

// PlanOf reads and validates a Plan object's plan.
func PlanOf(v map[string]any) (rollout.Plan, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return rollout.Plan{}, err
	}
	return rollout.ParsePlan(b)
}

// PlanValues is a plan as a Plan object holds it.
func PlanValues(p rollout.Plan) map[string]any {
	b, _ := json.Marshal(p)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	return m
}

// leaves are the deepest errors of a validation: the specific ones.
func leaves(e *jsonschema.ValidationError) []*jsonschema.ValidationError {
	if len(e.Causes) == 0 {
		return []*jsonschema.ValidationError{e}
	}
	var out []*jsonschema.ValidationError
	for _, c := range e.Causes {
		out = append(out, leaves(c)...)
	}
	return out
}

// nodeAt is the YAML node at a JSON pointer's tokens, or the deepest one
// found: the line to point at.
func nodeAt(n *yaml.Node, path []string) *yaml.Node {
	for _, tok := range path {
		switch n.Kind {
		case yaml.MappingNode:
			found := false
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == tok {
					n, found = n.Content[i+1], true
					break
				}
			}
			if !found {
				return n
			}
		case yaml.SequenceNode:
			var i int
			if _, err := fmt.Sscan(tok, &i); err != nil || i < 0 || i >= len(n.Content) {
				return n
			}
			n = n.Content[i]
		default:
			return n
		}
	}
	return n
}

// keyAt is the key node named key of mapping n, or n.
func keyAt(n *yaml.Node, key string) *yaml.Node {
	if n.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == key {
				return n.Content[i]
			}
		}
	}
	return n
}

// Dedupe refuses an object declared twice, naming both places.
func Dedupe(objs []Object) error {
	seen := map[string]Object{}
	var problems []string
	for _, o := range objs {
		if prev, ok := seen[o.Key()]; ok {
			problems = append(problems, fmt.Sprintf("%s: %s is declared again (first at %s)", o.Source, o.Key(), prev.Source))
			continue
		}
		seen[o.Key()] = o
	}
	if len(problems) > 0 {
		return &Error{Problems: problems}
	}
	return nil
}

// Marshal writes objects as YAML documents, in Kinds order and by key:
// what `get -o yaml` prints and apply reads back. No object, no output.
func Marshal(w io.Writer, objs []Object) error {
	if len(objs) == 0 {
		return nil
	}
	objs = slices.Clone(objs)
	slices.SortFunc(objs, func(a, b Object) int {
		if c := slices.Index(Kinds, a.Kind) - slices.Index(Kinds, b.Kind); c != 0 {
			return c
		}
		return strings.Compare(a.Key(), b.Key())
	})
	enc := yaml.NewEncoder(w)
	enc.SetIndent(2)
	for _, o := range objs {
		if err := enc.Encode(o); err != nil {
			return err
		}
	}
	return enc.Close()
}
