package manifest

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Op is what apply does to one object.
type Op string

const (
	OpCreate  Op = "create"
	OpUpdate  Op = "update"
	OpReplace Op = "replace" // a webhook whose filter or format changed: deleted and created again
	OpPrune   Op = "prune"   // not declared: deleted, or set back to its default
	// OpRefuse is a change the API cannot make (a channel's kind or
	// category, fixed at creation); apply reports it and makes none.
	OpRefuse Op = "refuse"
)

// Change is one step of a plan.
type Change struct {
	Op Op
	// Want is the declared object (for a prune: the object as it will be,
	// at its default); Have the server's, nil for a create.
	Want Object
	Have *Object
	// Diff are the fields that change, "field: old → new".
	Diff []string
}

// String is the change as --dry-run prints it.
func (c Change) String() string {
	sign := map[Op]string{OpCreate: "+", OpUpdate: "~", OpReplace: "-/+", OpPrune: "-", OpRefuse: "!"}[c.Op]
	s := fmt.Sprintf("%s %s %s", sign, c.Op, c.Want.Key())
	if c.Want.Source != "" {
		s += " (" + c.Want.Source + ")"
	}
	for _, d := range c.Diff {
		s += "\n    " + d
	}
	return s
}

// Plan is the changes that bring have (the server's objects) to want
// (the declared ones), in Kinds order. With prune, objects of the
// declared kinds and scopes that are not declared go: webhooks are
// deleted; policies, budgets and kill switches are set back to their
// defaults; channels are never deleted. Scopes are the organisations,
// vendors and webhook owners the declaration names, so that a file for
// one organisation never prunes another's.
func Plan(want, have []Object, prune bool) []Change {
	current := map[string]Object{}
	for _, o := range have {
		current[o.Key()] = o.Normal()
	}
	var out []Change
	declared := map[string]bool{}
	for _, w := range want {
		declared[w.Key()] = true
		w := w.Normal()
		h, ok := current[w.Key()]
		if !ok {
			if w.Default() {
				continue // a released switch, a ga policy: as if absent
			}
			out = append(out, Change{Op: OpCreate, Want: w, Diff: fields(nil, w)})
			continue
		}
		diff := fields(&h, w)
		if len(diff) == 0 {
			continue
		}
		c := Change{Op: OpUpdate, Want: w, Have: &h, Diff: diff}
		switch w.Kind {
		case KindChannel:
			c.Op = OpRefuse
			c.Diff = append(c.Diff, "a channel's type, category and unpausable are fixed when it is created")
		case KindWebhook:
			if !slices.Equal(w.Events, h.Events) || w.Format != h.Format {
				c.Op = OpReplace
				c.Diff = append(c.Diff, "the subscription is deleted and created again, with a new secret")
			}
		}
		out = append(out, c)
	}
	if prune {
		scope := scopes(want)
		for _, h := range have {
			h := h.Normal()
			if declared[h.Key()] || !scope.covers(h) || h.Default() {
				continue
			}
			if h.Kind == KindPlan || h.Kind == KindWebhook {
				out = append(out, Change{Op: OpPrune, Want: h, Have: &h, Diff: []string{"deleted"}})
				continue
			}
			d := h.pruned()
			out = append(out, Change{Op: OpPrune, Want: d, Have: &h, Diff: fields(&h, d)})
		}
	}
	slices.SortStableFunc(out, func(a, b Change) int {
		if c := slices.Index(Kinds, a.Want.Kind) - slices.Index(Kinds, b.Want.Kind); c != 0 {
			return c
		}
		return strings.Compare(a.Want.Key(), b.Want.Key())
	})
	return out
}

// pruned is the object as prune leaves it.
func (o Object) pruned() Object {
	switch o.Kind {
	case KindPolicy:
		o.Track, o.Windows = "ga", nil
	case KindBudget:
		zero := 0
		o.HourlyCapBP = &zero
	case KindKillSwitch:
		f := false
		o.Engaged, o.Reason = &f, "pruned by ringfence apply: not declared"
	}
	o.Source = ""
	return o
}

type scope struct {
	kinds, orgs, owners, vendors map[string]bool
}

func scopes(want []Object) scope {
	s := scope{kinds: map[string]bool{}, orgs: map[string]bool{}, owners: map[string]bool{}, vendors: map[string]bool{}}
	for _, o := range want {
		s.kinds[o.Kind] = true
		if o.Kind == KindPlan {
			s.vendors[o.Vendor] = true
		}
		if o.Org != "" && o.Kind != KindWebhook {
			s.orgs[o.Org] = true
		}
		if o.Kind == KindWebhook {
			s.owners[o.Owner()] = true
		}
	}
	return s
}

func (s scope) covers(o Object) bool {
	if !s.kinds[o.Kind] {
		return false
	}
	switch o.Kind {
	case KindChannel:
		return false // never deleted
	case KindPlan:
		return s.vendors[o.Vendor]
	case KindPolicy, KindBudget:
		return s.orgs[o.Org]
	case KindWebhook:
		return s.owners[o.Owner()]
	}
	return true
}

// identity are the fields that name an object rather than describe it;
// a kill switch's reason is what apply records, not its state.
var identity = map[string][]string{
	KindChannel:    {"kind", "vendor", "name"},
	KindPlan:       {"kind", "vendor", "name"},
	KindPolicy:     {"kind", "org", "channel"},
	KindBudget:     {"kind", "org"},
	KindKillSwitch: {"kind", "scope", "reason"},
	KindWebhook:    {"kind", "vendor", "org", "url"},
}

// fields are the described fields that differ, "field: old → new"; all
// of them for a create (have nil).
func fields(have *Object, want Object) []string {
	w := asMap(want)
	h := map[string]any{}
	if have != nil {
		h = asMap(*have)
	}
	for _, k := range identity[want.Kind] {
		delete(w, k)
		delete(h, k)
	}
	keys := slices.Sorted(maps.Keys(w))
	for k := range h {
		if _, ok := w[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	var out []string
	for _, k := range slices.Compact(keys) {
		if have == nil {
			out = append(out, fmt.Sprintf("%s: %s", k, show(w[k])))
			continue
		}
		// Nested values (a plan) differ leaf by leaf: "plan.waves[0].bake".
		hf, wf := map[string]string{}, map[string]string{}
		flatten(k, h[k], hf)
		flatten(k, w[k], wf)
		paths := slices.Sorted(maps.Keys(wf))
		for p := range hf {
			if _, ok := wf[p]; !ok {
				paths = append(paths, p)
			}
		}
		slices.Sort(paths)
		for _, p := range slices.Compact(paths) {
			a, b := cmpOr(hf[p], "(none)"), cmpOr(wf[p], "(none)")
			if a != b {
				out = append(out, fmt.Sprintf("%s: %s → %s", p, a, b))
			}
		}
	}
	return out
}

// flatten puts v's leaves into out by path.
func flatten(path string, v any, out map[string]string) {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			flatten(path+"."+k, x, out)
		}
	case []any:
		if len(v) == 0 {
			out[path] = "[]"
		}
		for i, x := range v {
			flatten(fmt.Sprintf("%s[%d]", path, i), x, out)
		}
	case nil:
	default:
		out[path] = show(v)
	}
}

func asMap(o Object) map[string]any {
	b, _ := json.Marshal(o)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	return m
}

func show(v any) string {
	if v == nil {
		return "(none)"
	}
	b, _ := json.Marshal(v)
	return string(b)
}
