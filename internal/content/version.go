package content

import (
	"fmt"
	"strconv"
	"strings"
)

// AgentVersion is a dotted numeric agent version, MAJOR.MINOR.PATCH. A
// missing PATCH reads as 0, so "7.11" and "7.11.0" are the same version.
type AgentVersion struct{ Major, Minor, Patch uint32 }

// ParseAgentVersion parses "7.11.0" or "7.11".
func ParseAgentVersion(s string) (AgentVersion, error) {
	parts := strings.Split(s, ".")
	if len(parts) < 2 || len(parts) > 3 {
		return AgentVersion{}, fmt.Errorf("agent version %q: want MAJOR.MINOR[.PATCH]", s)
	}
	var n [3]uint32
	for i, p := range parts {
		if p == "" || (len(p) > 1 && p[0] == '0') {
			return AgentVersion{}, fmt.Errorf("agent version %q: part %d %q is not a canonical number", s, i+1, p)
		}
		v, err := strconv.ParseUint(p, 10, 32)
		if err != nil {
			return AgentVersion{}, fmt.Errorf("agent version %q: part %d %q is not a number", s, i+1, p)
		}
		n[i] = uint32(v)
	}
	return AgentVersion{n[0], n[1], n[2]}, nil
}

func (v AgentVersion) String() string { return fmt.Sprintf("%d.%d.%d", v.Major, v.Minor, v.Patch) }

// Compare returns -1, 0 or +1.
func (v AgentVersion) Compare(w AgentVersion) int {
	for _, d := range [...][2]uint32{{v.Major, w.Major}, {v.Minor, w.Minor}, {v.Patch, w.Patch}} {
		if d[0] < d[1] {
			return -1
		}
		if d[0] > d[1] {
			return 1
		}
	}
	return 0
}

// VersionRange is a conjunction of comparisons such as ">=7.11.0 <8.0.0".
// The empty range matches every version.
type VersionRange struct {
	terms []rangeTerm
}

type rangeTerm struct {
	op string // one of >=, >, <=, <, =
	v  AgentVersion
}

// ParseVersionRange parses space-separated comparisons: ">=7.11", "<8.0",
// "=7.12.1". A bare version means "=".
func ParseVersionRange(s string) (VersionRange, error) {
	var r VersionRange
	for _, f := range strings.Fields(s) {
		op := "="
		for _, cand := range []string{">=", "<=", ">", "<", "="} {
			if strings.HasPrefix(f, cand) {
				op, f = cand, f[len(cand):]
				break
			}
		}
		v, err := ParseAgentVersion(f)
		if err != nil {
			return VersionRange{}, fmt.Errorf("version range %q: %w", s, err)
		}
		r.terms = append(r.terms, rangeTerm{op, v})
	}
	return r, nil
}

// Contains reports whether v satisfies every comparison.
func (r VersionRange) Contains(v AgentVersion) bool {
	for _, t := range r.terms {
		c := v.Compare(t.v)
		ok := false
		switch t.op {
		case ">=":
			ok = c >= 0
		case ">":
			ok = c > 0
		case "<=":
			ok = c <= 0
		case "<":
			ok = c < 0
		case "=":
			ok = c == 0
		}
		if !ok {
			return false
		}
	}
	return true
}

// String gives the canonical form, which is what the compiled bundle stores.
func (r VersionRange) String() string {
	parts := make([]string, len(r.terms))
	for i, t := range r.terms {
		parts[i] = t.op + t.v.String()
	}
	return strings.Join(parts, " ")
}
