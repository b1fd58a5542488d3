package content_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ringfence/ringfence/internal/content"
)

// TestAdversarialValidate runs the hostile bundles in testdata/adversarial
// through the parser and the validator, against the example catalog. Each
// file says on its second line what it must get:
//
//	# want: error RULE            an error finding with that rule
//	# want: warning RULE          a warning with that rule, and no error
//	# want: accepted              no error finding
//	# want: source-error TEXT     the parser refuses the file, saying TEXT
//
// Files without a "# want:" line belong to other tests (preflight, the
// evaluators) and are skipped here.
func TestAdversarialValidate(t *testing.T) {
	dir := filepath.Join("..", "..", "examples", "content")
	cat, err := content.LoadCatalog(filepath.Join(dir, "template-types"), filepath.Join(dir, "manifests"))
	if err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob(filepath.Join("testdata", "adversarial", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no adversarial cases: %v", err)
	}
	for _, path := range files {
		src, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		want, ok := wantLine(string(src))
		if !ok {
			continue
		}
		t.Run(strings.TrimSuffix(filepath.Base(path), ".yaml"), func(t *testing.T) {
			kind, arg, _ := strings.Cut(want, " ")
			b, perr := content.LoadBundle(path)
			if kind == "source-error" {
				if perr == nil || !strings.Contains(perr.Error(), arg) {
					t.Fatalf("parse error %v, want one saying %q", perr, arg)
				}
				return
			}
			if perr != nil {
				t.Fatalf("parse: %v", perr)
			}
			v := cat.Validate(b, 1)
			var errs, warns []string
			for _, f := range v.Findings {
				if f.Level == content.LevelError {
					errs = append(errs, f.Rule)
				} else {
					warns = append(warns, f.Rule)
				}
			}
			has := func(rules []string, r string) bool {
				for _, x := range rules {
					if x == r {
						return true
					}
				}
				return false
			}
			switch kind {
			case "accepted":
				if len(errs) > 0 || v.Compiled == nil {
					t.Fatalf("rejected: %v", v.Findings)
				}
			case "error":
				if !has(errs, arg) {
					t.Fatalf("errors %v, want %s; findings: %v", errs, arg, v.Findings)
				}
			case "warning":
				if len(errs) > 0 || !has(warns, arg) {
					t.Fatalf("errors %v warnings %v, want only the warning %s; findings: %v", errs, warns, arg, v.Findings)
				}
			default:
				t.Fatalf("unknown want %q", want)
			}
		})
	}
}

func wantLine(src string) (string, bool) {
	for _, line := range strings.SplitN(src, "\n", 4)[:3] {
		if w, ok := strings.CutPrefix(line, "# want: "); ok {
			return strings.TrimSpace(w), true
		}
	}
	return "", false
}
