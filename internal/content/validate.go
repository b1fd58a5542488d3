package content

import (
	"cmp"
	"fmt"
	"io/fs"
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
		s.add(LevelError, "no-targeted-agents", b.Pos, "", nil, nil,
			"targets (platforms %s, agent versions %q) match no capability manifest, so nothing says what those agents supply",
			orAll(b.Targets.Platforms), b.Targets.AgentVersions.String())
	}
	cat.checkAgents(s, b, tt, v.Targeted)
	v.Findings = sortFindings(s.out)
	return v
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
