package content

import (
	"cmp"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Catalog is what bundles are checked against: the template types and the
// capability manifests of every agent version in the field.
type Catalog struct {
	Types     map[TypeRef]*TemplateType
	Manifests []*Manifest
}

// LoadCatalog reads template types and manifests from two directories of
// YAML or JSON files.
func LoadCatalog(typesDir, manifestsDir string) (*Catalog, error) {
	return LoadCatalogFS(osFS{}, typesDir, manifestsDir)
}

// osFS opens operating-system paths as they are, so messages name the
// paths the user gave.
type osFS struct{}

func (osFS) Open(name string) (fs.File, error) { return os.Open(name) }

// LoadCatalogFS reads a catalog from a file system, such as the examples
// embedded in the binary.
func LoadCatalogFS(fsys fs.FS, typesDir, manifestsDir string) (*Catalog, error) {
	cat := &Catalog{Types: map[TypeRef]*TemplateType{}}
	if typesDir != "" {
		err := eachSource(fsys, typesDir, func(path string, b []byte) error {
			t, err := ParseTemplateType(path, b)
			if err != nil {
				return err
			}
			if prev, dup := cat.Types[t.Ref()]; dup {
				return &SourceError{Pos: t.Pos, Offset: -1, Msg: fmt.Sprintf("template type %s is also defined at %s", t.Ref(), prev.Pos)}
			}
			cat.Types[t.Ref()] = t
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	if manifestsDir != "" {
		err := eachSource(fsys, manifestsDir, func(path string, b []byte) error {
			m, err := ParseManifest(path, b)
			if err != nil {
				return err
			}
			for _, prev := range cat.Manifests {
				if prev.AgentVersion == m.AgentVersion && prev.Platform == m.Platform {
					return &SourceError{Pos: m.Pos, Offset: -1, Msg: fmt.Sprintf("agent %s is also described at %s", m.Agent(), prev.Pos)}
				}
			}
			cat.Manifests = append(cat.Manifests, m)
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	slices.SortFunc(cat.Manifests, func(a, b *Manifest) int {
		return cmp.Or(a.AgentVersion.Compare(b.AgentVersion), strings.Compare(a.Platform, b.Platform))
	})
	return cat, nil
}

func eachSource(fsys fs.FS, dir string, fn func(path string, b []byte) error) error {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		ext := filepath.Ext(e.Name())
		if e.IsDir() || (ext != ".yaml" && ext != ".yml" && ext != ".json") {
			continue
		}
		path := filepath.Join(dir, e.Name())
		if _, ok := fsys.(osFS); !ok {
			path = dir + "/" + e.Name() // fs.FS paths are slash-separated
		}
		b, err := readSourceFS(fsys, path)
		if err != nil {
			return err
		}
		if err := fn(path, b); err != nil {
			return err
		}
	}
	return nil
}

// LoadBundle reads and parses one bundle source file.
func LoadBundle(path string) (*Bundle, error) {
	b, err := readSource(path)
	if err != nil {
		return nil, err
	}
	return ParseBundle(path, b)
}

// Validation is the verdict on one bundle.
type Validation struct {
	Findings Findings
	// Compiled is set when the bundle compiled; it may still be rejected
	// by findings against the manifests.
	Compiled *Compiled
	// Encoded is Compiled's canonical bytes, what ships.
	Encoded []byte
	// Targeted lists the manifests of the agents the bundle targets.
	Targeted []*Manifest
}

// Accepted reports whether no finding rejects the bundle.
func (v *Validation) Accepted() bool { return v.Compiled != nil && v.Findings.Errors() == 0 }

// Validate checks a bundle against its template type and against every
// capability manifest it targets. current is the channel's current version
// (0 when the channel has none yet).
func (cat *Catalog) Validate(b *Bundle, current uint64) *Validation {
	s := &findingSink{bundle: b.Name()}
	v := &Validation{}
	checkVersion(s, b.Pos, b.Version, current)
	tt := cat.Types[b.TemplateType]
	if tt == nil {
		var known []string
		for ref := range cat.Types {
			if ref.Name == b.TemplateType.Name {
				known = append(known, ref.String())
			}
		}
		hint := ""
		if len(known) > 0 {
			slices.Sort(known)
			hint = " (known versions: " + strings.Join(known, ", ") + ")"
		}
		s.add(LevelError, "unknown-template-type", b.Pos, "", nil, nil, "unknown template type %s%s", b.TemplateType, hint)
		v.Findings = sortFindings(s.out)
		return v
	}
	c, encoded, fs := compile(b, tt)
	s.out = append(s.out, fs...)
	v.Compiled, v.Encoded = c, encoded

	for _, m := range cat.Manifests {
		if b.Targets.Matches(m) {
			v.Targeted = append(v.Targeted, m)
		}
	}
	if len(v.Targeted) == 0 {
		s.add(LevelError, "no-targeted-agents", cmp.Or(b.Targets.Pos, b.Pos), "", nil, nil,
			"targets (platforms %s, agent versions %q) match no capability manifest, so nothing says what those agents supply",
			orAll(b.Targets.Platforms), b.Targets.AgentVersions.String())
	}
	cat.checkAgents(s, b, tt, v.Targeted)
	cat.checkRangeLines(s, b)
	v.Findings = sortFindings(s.out)
	return v
}

// Describing returns the manifest that describes agent version v on a
// platform: the newest manifest of the same MAJOR.MINOR line at or below
// v, since patch releases supply what their line's last manifest says
// until a new manifest says otherwise. Nil when none does.
func (cat *Catalog) Describing(platform string, v AgentVersion) *Manifest {
	var best *Manifest
	for _, m := range cat.Manifests {
		a := m.AgentVersion
		if m.Platform == platform && a.Major == v.Major && a.Minor == v.Minor && a.Compare(v) <= 0 &&
			(best == nil || a.Compare(best.AgentVersion) > 0) {
			best = m
		}
	}
	return best
}

// Delivers reports whether a bundle with these targets goes to an agent:
// only when the targets take the agent and the manifest that describes it,
// so that every agent that receives a bundle is one validation checked. A
// device the catalog cannot describe receives nothing; the server says so.
func (cat *Catalog) Delivers(t Targets, platform string, v AgentVersion) bool {
	m := cat.Describing(platform, v)
	return m != nil && t.Matches(&Manifest{Platform: platform, AgentVersion: v}) && t.Matches(m)
}

// AgentCount is how many devices in the field run one agent version on
// one platform, as they report it.
type AgentCount struct {
	Platform     string
	AgentVersion string
	Devices      int64
}

// Widespread is how many devices make an agent version without a manifest
// an error at publish: at least WidespreadDevices of them, and at least
// WidespreadShare of the platform's enrolled devices.
const (
	WidespreadDevices = 100
	WidespreadShare   = 0.01
)

// CheckFleet adds to a validation the agent versions devices in the field
// run that the bundle's targets take but no targeted manifest describes:
// the server does not deliver to them (Delivers), and nothing checked
// what they supply, so the range or the catalog is wrong. It is an error
// when the version is widespread (WidespreadDevices and WidespreadShare of
// its platform), a warning below that: devices choose the version they
// report, so a few enrolled devices, or a leaked enrolment token, must not
// be able to stop a vendor publishing, while a version a real part of the
// fleet runs is a catalog to fix before shipping. Versions that do not
// parse are left out: no range takes them.
func (cat *Catalog) CheckFleet(b *Bundle, v *Validation, fleet []AgentCount) {
	s := &findingSink{bundle: b.Name()}
	perPlatform := map[string]int64{}
	for _, c := range fleet {
		perPlatform[c.Platform] += c.Devices
	}
	for _, c := range fleet {
		av, err := ParseAgentVersion(c.AgentVersion)
		if err != nil || !b.Targets.Matches(&Manifest{Platform: c.Platform, AgentVersion: av}) || cat.Delivers(b.Targets, c.Platform, av) {
			continue
		}
		agent := fmt.Sprintf("%s (%s)", av, c.Platform)
		why := "no manifest describes it"
		if m := cat.Describing(c.Platform, av); m != nil {
			why = fmt.Sprintf("manifest %s describes it, and the range excludes %s", m.AgentVersion, m.AgentVersion)
		}
		level, scale := LevelWarning, ""
		if c.Devices >= WidespreadDevices && float64(c.Devices) >= WidespreadShare*float64(perPlatform[c.Platform]) {
			level, scale = LevelError, fmt.Sprintf(" (%s of the platform's devices: too many to ship without)", percentOf(c.Devices, perPlatform[c.Platform]))
		}
		s.add(level, "agent-without-manifest", cmp.Or(b.Targets.Pos, b.Pos), "", nil, []string{agent},
			"targets.agent_versions %q takes agent %s, which %d enrolled devices run%s, but %s: they will not receive this bundle, since nothing checked what they supply; add its manifest to the catalog or narrow the range",
			b.Targets.AgentVersions.String(), agent, c.Devices, scale, why)
	}
	v.Findings = sortFindings(append(v.Findings, s.out...))
}

// checkRangeLines finds agents the targets take while excluding the
// manifest that describes them (">7.11.0" takes 7.11.1, which 7.11.0
// describes), or that no manifest of their line describes: the server
// would deliver to them (or, since it delivers only what validation
// checked, silently not), and nothing checked what they supply.
func (cat *Catalog) checkRangeLines(s *findingSink, b *Bundle) {
	type line struct {
		platform     string
		major, minor uint32
	}
	cands := map[line][]AgentVersion{}
	for _, m := range cat.Manifests {
		if len(b.Targets.Platforms) > 0 && !slices.Contains(b.Targets.Platforms, m.Platform) {
			continue
		}
		a := m.AgentVersion
		l := line{m.Platform, a.Major, a.Minor}
		cands[l] = append(cands[l], AgentVersion{a.Major, a.Minor, 0}, a, AgentVersion{a.Major, a.Minor, a.Patch + 1})
	}
	// The range's own bounds, and just past them, are where it can split
	// a line.
	for l := range cands {
		for _, t := range b.Targets.AgentVersions.terms {
			if t.v.Major == l.major && t.v.Minor == l.minor {
				cands[l] = append(cands[l], t.v, AgentVersion{t.v.Major, t.v.Minor, t.v.Patch + 1})
			}
		}
	}
	lines := slices.SortedFunc(maps.Keys(cands), func(a, b line) int {
		return cmp.Or(strings.Compare(a.platform, b.platform), cmp.Compare(a.major, b.major), cmp.Compare(a.minor, b.minor))
	})
	for _, l := range lines {
		vs := cands[l]
		slices.SortFunc(vs, AgentVersion.Compare)
		for _, v := range slices.Compact(vs) {
			if !b.Targets.AgentVersions.Contains(v) {
				continue
			}
			m := cat.Describing(l.platform, v)
			agent := fmt.Sprintf("%s (%s)", v, l.platform)
			switch {
			case m == nil:
				s.add(LevelError, "range-without-manifest", b.Targets.Pos, "", nil, []string{agent},
					"targets.agent_versions %q takes agent %s, and no manifest of the %d.%d line describes it (the first is later): nothing checked what it supplies; narrow the range or add its manifest",
					b.Targets.AgentVersions.String(), agent, l.major, l.minor)
			case !b.Targets.AgentVersions.Contains(m.AgentVersion):
				s.add(LevelError, "range-without-manifest", b.Targets.Pos, "", nil, []string{agent},
					"targets.agent_versions %q takes agent %s, which manifest %s describes, but excludes %s itself: nothing checked what %s supplies; take %s in the range too, or add a manifest for %s",
					b.Targets.AgentVersions.String(), agent, m.AgentVersion, m.AgentVersion, v, m.AgentVersion, v)
			default:
				continue
			}
			break // one finding a line says it
		}
	}
}

func orAll(ps []string) string {
	if len(ps) == 0 {
		return "all"
	}
	return strings.Join(ps, ", ")
}

// agentGroup is the targeted agents that share one value (an input count
// or a limit), so that one finding names them together.
type agentGroup struct {
	value  int
	agents []string
}

func group(ms []*Manifest, value func(*Manifest) (int, bool)) []agentGroup {
	var gs []agentGroup
	for _, m := range ms {
		n, ok := value(m)
		if !ok {
			continue
		}
		i := slices.IndexFunc(gs, func(g agentGroup) bool { return g.value == n })
		if i < 0 {
			gs = append(gs, agentGroup{value: n})
			i = len(gs) - 1
		}
		gs[i].agents = append(gs[i].agents, m.Agent())
	}
	return gs
}

func agentWords(agents []string, one, many string) string {
	if len(agents) == 1 {
		return fmt.Sprintf("agent %s %s", agents[0], one)
	}
	return fmt.Sprintf("agents %s %s", strings.Join(agents, ", "), many)
}

// checkAgents holds the rules that depend on what each targeted agent
// really supplies and accepts (agentrules.go, shared with preflight).
func (cat *Catalog) checkAgents(s *findingSink, b *Bundle, tt *TemplateType, targeted []*Manifest) {
	supporting := supportingAgents(s, b.Pos, tt.Ref(), targeted)
	checkAgentRules(s, tt.Ref(), supporting, sourceRuleInstances(b, tt), true)
}

func resolveField(tt *TemplateType, cr *Criterion) *Field {
	if cr.FieldName != "" {
		return tt.FieldByName(cr.FieldName)
	}
	if cr.FieldIndex >= 1 && cr.FieldIndex <= len(tt.Fields) {
		return &tt.Fields[cr.FieldIndex-1]
	}
	return nil
}

func sortFindings(fs Findings) Findings {
	slices.SortStableFunc(fs, func(a, b Finding) int {
		return cmp.Or(cmp.Compare(a.Pos.Line, b.Pos.Line), cmp.Compare(a.Pos.Col, b.Pos.Col))
	})
	return fs
}

// percentOf writes n of total as a percentage, one decimal.
func percentOf(n, total int64) string {
	if total <= 0 {
		return "all"
	}
	return fmt.Sprintf("%.1f%%", 100*float64(n)/float64(total))
}
