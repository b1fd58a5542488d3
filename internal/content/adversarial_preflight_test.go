package content_test

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/ringfence/ringfence/internal/content"
)

// adversarialCase is the expectation a testdata/adversarial/preflight-*.yaml
// file states in its leading comment, as "# key: value" lines:
//
//	verdict:  accepted or rejected
//	rule:     a rule some error finding has (rejected only)
//	agents:   the agents that finding names, ";"-separated (optional)
//	instance: the instance it names (optional)
//	field:    the field it names (optional)
//	current:  the channel's current version (optional)
//	drift:    FIELD=TYPE: compile against the catalog's type with that
//	          field retyped, as a bundle built from a stale schema (optional)
type adversarialCase struct {
	verdict, rule, instance, field, drift string
	agents                                []string
	current                               uint64
}

func parseAdversarialHeader(t *testing.T, src []byte) adversarialCase {
	t.Helper()
	var ac adversarialCase
	sc := bufio.NewScanner(bytes.NewReader(src))
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "#") {
			break
		}
		k, v, ok := strings.Cut(strings.TrimSpace(strings.TrimPrefix(line, "#")), ":")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		switch k {
		case "verdict":
			ac.verdict = v
		case "rule":
			ac.rule = v
		case "agents":
			for _, a := range strings.Split(v, ";") {
				ac.agents = append(ac.agents, strings.TrimSpace(a))
			}
		case "instance":
			ac.instance = v
		case "field":
			ac.field = v
		case "drift":
			ac.drift = v
		case "current":
			n, err := strconv.ParseUint(v, 10, 63)
			if err != nil {
				t.Fatalf("header current: %v", err)
			}
			ac.current = n
		}
	}
	if ac.verdict != "accepted" && ac.verdict != "rejected" {
		t.Fatalf("header has no verdict: accepted or rejected")
	}
	if (ac.verdict == "rejected") != (ac.rule != "") {
		t.Fatalf("header: a rejected case names its rule, an accepted one none")
	}
	return ac
}

// staticRules are decided from the bundle alone, so the validator must
// reach the same verdict on the source as preflight on the compiled bytes.
var staticRules = []string{"regex-too-large", "too-many-criteria", "template-type-unsupported", "version-not-increasing"}

// TestAdversarialPreflight runs every testdata/adversarial/preflight-*.yaml
// through preflight as compiled bytes, against the examples' catalog, and
// checks the verdict and the finding its header states.
func TestAdversarialPreflight(t *testing.T) {
	dir := filepath.Join("..", "..", "examples", "content")
	cat, err := content.LoadCatalog(filepath.Join(dir, "template-types"), filepath.Join(dir, "manifests"))
	if err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob(filepath.Join("testdata", "adversarial", "preflight-*.yaml"))
	if err != nil || len(files) < 5 {
		t.Fatalf("found %d preflight cases (%v)", len(files), err)
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".yaml"), func(t *testing.T) {
			src, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			ac := parseAdversarialHeader(t, src)
			b, err := content.ParseBundle(file, src)
			if err != nil {
				t.Fatal(err)
			}
			tt := cat.Types[b.TemplateType]
			if tt == nil {
				t.Fatalf("template type %s is not in the examples", b.TemplateType)
			}
			if ac.drift != "" {
				name, typ, _ := strings.Cut(ac.drift, "=")
				ft, err := content.ParseFieldType(typ)
				if err != nil {
					t.Fatal(err)
				}
				tt = retyped(tt, func(fs []content.Field) []content.Field {
					i := slices.IndexFunc(fs, func(f content.Field) bool { return f.Name == name })
					if i < 0 {
						t.Fatalf("drift: no field %q", name)
					}
					fs[i].Type = ft
					return fs
				})
			}
			c := compiledBytes(t, string(src), tt)
			rep, err := cat.Preflight(context.Background(), c, content.PreflightOptions{Current: ac.current})
			if err != nil {
				t.Fatal(err)
			}
			fs := rep.Findings
			if got := map[bool]string{true: "accepted", false: "rejected"}[fs.Errors() == 0]; got != ac.verdict {
				t.Fatalf("verdict %s, want %s; findings:\n%s", got, ac.verdict, renderFindings(fs))
			}
			if ac.rule == "" {
				return
			}
			i := slices.IndexFunc(fs, func(f content.Finding) bool { return f.Rule == ac.rule && f.Level == content.LevelError })
			if i < 0 {
				t.Fatalf("no error [%s]; findings:\n%s", ac.rule, renderFindings(fs))
			}
			f := fs[i]
			if ac.agents != nil && !slices.Equal(f.Agents, ac.agents) {
				t.Errorf("finding names agents %q, want %q: %s", f.Agents, ac.agents, f)
			}
			if ac.instance != "" && f.Instance != ac.instance {
				t.Errorf("finding names instance %q, want %q: %s", f.Instance, ac.instance, f)
			}
			if ac.field != "" && f.FieldName != ac.field {
				t.Errorf("finding names field %q, want %q: %s", f.FieldName, ac.field, f)
			}
			if slices.Contains(staticRules, ac.rule) && ac.drift == "" {
				v := cat.Validate(b, ac.current)
				if !slices.ContainsFunc(v.Findings, func(g content.Finding) bool {
					return g.Rule == ac.rule && g.Instance == f.Instance && slices.Equal(g.Agents, f.Agents)
				}) {
					t.Errorf("the validator disagrees on the source; its findings:\n%s", renderFindings(v.Findings))
				}
			}
		})
	}
}
