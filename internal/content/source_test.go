package content_test

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ringfence/ringfence/internal/content"
)

// parseAs runs the parser for kind ("bundle", "type" or "manifest") and
// turns a panic into a test failure.
func parseAs(t *testing.T, kind, file string, b []byte) (err error) {
	t.Helper()
	defer func() {
		if p := recover(); p != nil {
			t.Fatalf("%s parser panicked on %s: %v", kind, file, p)
		}
	}()
	switch kind {
	case "bundle":
		_, err = content.ParseBundle(file, b)
	case "type":
		_, err = content.ParseTemplateType(file, b)
	case "manifest":
		_, err = content.ParseManifest(file, b)
	default:
		t.Fatalf("unknown kind %q", kind)
	}
	return err
}

// checkLocated asserts that err is a SourceError or SourceErrors and that
// every error in it names file and a location: file:LINE:COL or a byte
// offset.
func checkLocated(t *testing.T, err error, file string) {
	t.Helper()
	var all content.SourceErrors
	var one *content.SourceError
	switch {
	case errors.As(err, &all):
	case errors.As(err, &one):
		all = content.SourceErrors{one}
	default:
		t.Fatalf("error %q (%T) is not a *content.SourceError or content.SourceErrors", err, err)
	}
	if len(all) == 0 {
		t.Fatalf("error %q: empty SourceErrors", err)
	}
	for _, e := range all {
		if e.Pos.File != file {
			t.Errorf("error %q: Pos.File = %q, want %q", e, e.Pos.File, file)
		}
		if (e.Pos.Line < 1 || e.Pos.Col < 1) && e.Offset < 0 {
			t.Errorf("error %q: no location (Pos %+v, Offset %d)", e, e.Pos, e.Offset)
		}
	}
	located := regexp.MustCompile(`^` + regexp.QuoteMeta(file) + `(:[1-9][0-9]*:[1-9][0-9]*|: byte offset [0-9]+): \S`)
	for _, line := range strings.Split(err.Error(), "\n") {
		if !located.MatchString(line) {
			t.Errorf("error line %q does not start with %s:LINE:COL or %s: byte offset N", line, file, file)
		}
	}
}

type sourceCase struct {
	name string
	kind string // bundle, type or manifest
	// file is a fixture under testdata/source; data, when set, generates
	// the bytes instead (binary or large inputs are not committed).
	file string
	data func() []byte
	want []string // each must appear in the error text
}

var sourceCases = []sourceCase{
	{name: "malformed-yaml", kind: "bundle", file: "malformed-yaml.yaml",
		want: []string{"malformed YAML/JSON: did not find expected ',' or ']'"}},
	{name: "malformed-yaml-indent", kind: "bundle", file: "malformed-yaml-indent.yaml",
		want: []string{"malformed-yaml-indent.yaml:3:1: malformed YAML/JSON: mapping values are not allowed in this context"}},
	{name: "malformed-json", kind: "bundle", file: "malformed-json.json",
		want: []string{"malformed-json.json:3:20: malformed YAML/JSON: invalid character ','", "(byte offset 41)"}},
	{name: "malformed-json-truncated", kind: "bundle", file: "malformed-json-truncated.json",
		want: []string{"malformed-json-truncated.json:1:36: malformed YAML/JSON: unexpected end of JSON input (byte offset 35)"}},
	{name: "unknown-key", kind: "bundle", file: "unknown-key.yaml",
		want: []string{
			`unknown-key.yaml:4:1: bundle: unknown key "chanel" (known keys: channel, description, instances, kind, targets, template_type, vendor, version)`,
			`unknown-key.yaml:9:5: instances[0]: unknown key "severty"`,
			`unknown-key.yaml:1:1: bundle: missing required key "channel"`,
		}},
	{name: "unknown-key-json", kind: "bundle", file: "unknown-key.json",
		want: []string{`unknown-key.json:3:3: bundle: unknown key "vendr"`, `unknown-key.json:1:1: bundle: missing required key "vendor"`}},
	{name: "wrong-scalar-kinds", kind: "bundle", file: "wrong-kinds.yaml",
		want: []string{
			"wrong-kinds.yaml:2:9: vendor: want a string, got a list",
			"wrong-kinds.yaml:3:10: channel: want a string, got a mapping",
			`wrong-kinds.yaml:4:10: version: want a whole number, got str "three"`,
			`wrong-kinds.yaml:5:16: template_type: template type "3": want NAME@VERSION`,
			`wrong-kinds.yaml:6:10: targets: want a mapping, got str ">=7.11"`,
			"wrong-kinds.yaml:8:9: instances[0].id: want a string, got a list",
			`wrong-kinds.yaml:9:15: instances[0].severity: unknown severity "4"`,
			"wrong-kinds.yaml:11:17: instances[0].criteria[0].field: want a string, got a list",
			"wrong-kinds.yaml:11:41: instances[0].criteria[0].value: want a single value, got a mapping",
		}},
	{name: "missing-required-keys", kind: "bundle", file: "missing-keys.yaml",
		want: []string{
			`missing-keys.yaml:1:1: bundle: missing required key "channel"`,
			`missing-keys.yaml:1:1: bundle: missing required key "targets"`,
			`missing-keys.yaml:4:5: instances[0]: missing required key "id"`,
			`missing-keys.yaml:5:9: instances[0].criteria[0]: missing required key "field"`,
		}},
	{name: "multiple-documents", kind: "bundle", file: "multi-document.yaml",
		want: []string{"multi-document.yaml:3:1: more than one YAML document in file"}},
	{name: "billion-laughs", kind: "bundle", file: "billion-laughs.yaml",
		want: []string{`billion-laughs.yaml:2:1: bundle: unknown key "a"`, `billion-laughs.yaml:10:1: bundle: unknown key "i"`}},
	{name: "billion-laughs-in-values", kind: "bundle", file: "billion-laughs-values.yaml",
		want: []string{
			"billion-laughs-values.yaml:8:14: description: want a string, got a list",
			"billion-laughs-values.yaml:14:18: instances[0].criteria[0].values: YAML aliases are not allowed in content",
			"billion-laughs-values.yaml:15:44: instances[0].criteria[1]: values: YAML aliases are not allowed in content",
		}},
	{name: "alias-scalar", kind: "bundle", file: "alias-scalar.yaml",
		want: []string{"alias-scalar.yaml:3:10: bundle: channel: YAML aliases are not allowed in content"}},
	{name: "undefined-alias", kind: "bundle", file: "alias.yaml",
		data: func() []byte { return []byte("kind: Bundle\nvendor: acme\nchannel: ipc\nversion: *x\n") },
		want: []string{"alias.yaml:4:10: malformed YAML/JSON: unknown anchor 'x' referenced (byte offset 48)"}},
	{name: "empty-file", kind: "bundle", file: "empty.yaml",
		want: []string{"empty file: want a YAML or JSON mapping"}},
	{name: "comments-only", kind: "bundle", file: "comments-only.yaml",
		want: []string{"empty file: want a YAML or JSON mapping"}},
	{name: "top-level-list", kind: "bundle", file: "top-level-list.yaml",
		want: []string{"top-level-list.yaml:1:1: want a mapping at the top level, got a list"}},
	{name: "nul-byte", kind: "bundle", file: "nul.yaml",
		data: func() []byte { return []byte("kind: Bundle\nvendor: ac\x00me\n") },
		want: []string{"nul.yaml:2:11: NUL byte in file", "(byte offset 23)"}},
	{name: "nul-byte-json", kind: "manifest", file: "nul.json",
		data: func() []byte { return []byte("{\"platform\": \"win\x00dows\"}") },
		want: []string{"nul.json:1:18: NUL byte in file", "(byte offset 17)"}},
	{name: "invalid-utf8", kind: "bundle", file: "latin1.yaml",
		data: func() []byte { return []byte("kind: Bundle\nvendor: acme\nchannel: caf\xe9\n") },
		want: []string{"latin1.yaml:3:13: invalid UTF-8 (byte offset 38)"}},
	{name: "invalid-utf8-truncated-rune", kind: "type", file: "cut.yaml",
		data: func() []byte { return []byte("name: caf\xc3") },
		want: []string{"cut.yaml:1:10: invalid UTF-8 (byte offset 9)"}},
	{name: "utf16", kind: "bundle", file: "utf16.yaml",
		data: func() []byte { return []byte("\xff\xfek\x00i\x00n\x00d\x00") },
		want: []string{"utf16.yaml:1:4: NUL byte in file", "(byte offset 3)"}},
	{name: "control-character", kind: "bundle", file: "ctrl.yaml",
		data: func() []byte { return []byte("kind: Bundle\nvendor: acme\nchannel: ip\x01c\n") },
		want: []string{"ctrl.yaml:3:12: control character U+0001 in file", "(byte offset 37)"}},
	{name: "c1-control-character", kind: "manifest", file: "c1.yaml",
		data: func() []byte { return []byte("platform: \u00e9\u0080\n") },
		want: []string{"c1.yaml:1:13: control character U+0080 in file", "(byte offset 12)"}},
	{name: "deep-flow-nesting", kind: "bundle", file: "deep.json",
		data: func() []byte { return []byte(strings.Repeat("[", 100_000)) },
		want: []string{"deep.json:1:33: nesting deeper than 32 levels (byte offset 32)"}},
	{name: "deep-flow-mappings", kind: "manifest", file: "deep.yaml",
		data: func() []byte { return []byte("platform: " + strings.Repeat("{a: ", 100_000)) },
		want: []string{"deep.yaml:1:", "nesting deeper than 32 levels"}},
	{name: "deep-block-nesting", kind: "bundle", file: "dashes.yaml",
		data: func() []byte { return []byte(strings.Repeat("- ", 100_000) + "x\n") },
		want: []string{"dashes.yaml:1:1: malformed YAML/JSON: exceeded max depth of 10000"}},
	{name: "deep-nesting-behind-a-quote", kind: "bundle", file: "quote.yaml",
		data: func() []byte { return []byte("vendor: [it's, " + strings.Repeat("[", 100_000) + "\n") },
		want: []string{"quote.yaml:1:1: malformed YAML/JSON: exceeded max depth of 10000"}},
	{name: "type-bad-fields", kind: "type", file: "type-bad-fields.yaml",
		want: []string{
			`type-bad-fields.yaml:5:39: fields[0].type: unknown field type "strng"`,
			"type-bad-fields.yaml:6:5: fields[1]: index 3 out of order: fields are listed in input order, so this one must have index 2",
			`type-bad-fields.yaml:7:5: fields[2]: enum field "level" needs values`,
			`type-bad-fields.yaml:8:39: fields[3]: unknown key "colour"`,
			`type-bad-fields.yaml:8:5: fields[3]: duplicate field name "pid"`,
		}},
	{name: "type-missing-keys", kind: "type", file: "type-missing-keys.yaml",
		want: []string{
			`type-missing-keys.yaml:2:7: name: "IPC" is not a valid name`,
			"type-missing-keys.yaml:3:14: description: want a string, got a list",
			`type-missing-keys.yaml:1:1: template type: missing required key "version"`,
			`type-missing-keys.yaml:1:1: template type: missing required key "fields"`,
		}},
	{name: "type-empty-fields", kind: "type", file: "no-fields.yaml",
		data: func() []byte { return []byte("name: ipc\nversion: 0\nfields: []\n") },
		want: []string{
			"no-fields.yaml:3:9: fields: a template type needs at least one field",
			"no-fields.yaml:2:10: version: want a whole number from 1 to 4294967295, got 0",
		}},
	{name: "manifest-bad-values", kind: "manifest", file: "manifest-bad.yaml",
		want: []string{
			`manifest-bad.yaml:2:16: agent_version: agent version "7.011": part 2 "011" is not a canonical number`,
			`manifest-bad.yaml:5:3: template_types: template type "ipc": want NAME@VERSION`,
			"manifest-bad.yaml:6:10: template_types.ipc@3: want a whole number from 0 to 256, got -1",
			`manifest-bad.yaml:7:10: template_types.dns@1: want a whole number, got str "twenty"`,
			`manifest-bad.yaml:10:3: limits: unknown key "max_criterias" (known keys: max_criteria, max_regex_program)`,
		}},
	{name: "manifest-wrong-kind", kind: "manifest", file: "manifest-wrong-kind.yaml",
		want: []string{
			`manifest-wrong-kind.yaml:1:7: kind: this file is read as a CapabilityManifest, but it says "Bundle"`,
			"manifest-wrong-kind.yaml:4:17: template_types: want a mapping of NAME@VERSION to input count, got a list",
		}},
	{name: "manifest-missing-keys", kind: "manifest", file: "m.json",
		data: func() []byte { return []byte(`{"kind": "CapabilityManifest"}`) },
		want: []string{
			`m.json:1:1: manifest: missing required key "agent_version"`,
			`m.json:1:1: manifest: missing required key "platform"`,
			`m.json:1:1: manifest: missing required key "template_types"`,
		}},
}

func TestSourceBadInput(t *testing.T) {
	for _, tc := range sourceCases {
		t.Run(tc.name, func(t *testing.T) {
			file := filepath.Join("testdata", "source", tc.file)
			var b []byte
			if tc.data != nil {
				b = tc.data()
				file = tc.file // generated: never read from disk
			} else {
				var err error
				if b, err = os.ReadFile(file); err != nil {
					t.Fatal(err)
				}
			}
			start := time.Now()
			err := parseAs(t, tc.kind, file, b)
			if d := time.Since(start); d > 10*time.Second {
				t.Errorf("parse took %v, want well under a second", d)
			}
			if err == nil {
				t.Fatalf("parsing %s as a %s: no error, want one", file, tc.kind)
			}
			checkLocated(t, err, file)
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not contain %q; got:\n%v", w, err)
				}
			}
			// The loader reports the same thing, naming the path it read.
			if tc.kind == "bundle" && tc.data == nil {
				_, lerr := content.LoadBundle(file)
				if lerr == nil || lerr.Error() != err.Error() {
					t.Errorf("LoadBundle error = %v\nwant the ParseBundle error %v", lerr, err)
				}
			}
		})
	}
}

// TestSourceGood makes sure the bad-input cases fail for the reason they
// name: the same parsers accept the examples and their JSON equivalents.
func TestSourceGood(t *testing.T) {
	dir := filepath.Join("..", "..", "examples", "content")
	for _, tc := range []struct{ name, kind, file string }{
		{"example-template-type", "type", filepath.Join(dir, "template-types", "ipc.yaml")},
		{"example-manifest", "manifest", filepath.Join(dir, "manifests", "agent-7.11.0-windows.yaml")},
		{"example-manifest-no-types", "manifest", filepath.Join(dir, "manifests", "agent-7.10.0-windows.yaml")},
		{"example-bundle", "bundle", filepath.Join(dir, "bundles", "ipc-292.yaml")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := os.ReadFile(tc.file)
			if err != nil {
				t.Fatal(err)
			}
			if err := parseAs(t, tc.kind, tc.file, b); err != nil {
				t.Errorf("parse %s: %v", tc.file, err)
			}
		})
	}
	t.Run("json-bundle", func(t *testing.T) {
		const src = `{"kind": "Bundle", "vendor": "acme", "channel": "ipc", "version": 3, "template_type": "ipc@3",
 "targets": {"platforms": ["windows"], "agent_versions": ">=7.11 <8.0"},
 "instances": [{"id": "a", "severity": "high", "action": "block",
   "criteria": [{"field": 8, "op": "in", "values": ["x", "y"]}, {"field": "pid", "op": "range", "min": 1}]}]}`
		b, err := content.ParseBundle("b.json", []byte(src))
		if err != nil {
			t.Fatalf("ParseBundle: %v", err)
		}
		if got, want := b.Name(), "acme/ipc@3"; got != want {
			t.Errorf("Name() = %q, want %q", got, want)
		}
		if got, want := b.Targets.AgentVersions.String(), ">=7.11.0 <8.0.0"; got != want {
			t.Errorf("agent_versions = %q, want %q", got, want)
		}
		if len(b.Instances) != 1 || len(b.Instances[0].Criteria) != 2 || b.Instances[0].Criteria[0].FieldIndex != 8 ||
			b.Instances[0].Criteria[1].FieldName != "pid" || b.Instances[0].Severity != content.SeverityHigh {
			t.Errorf("instances = %+v", b.Instances)
		}
	})
	t.Run("anchor-without-alias", func(t *testing.T) {
		// An anchor alone expands nothing; only aliases are refused.
		const src = "kind: &k TemplateType\nname: ipc\nversion: 1\nfields: [{index: 1, name: a, type: string}]\n"
		if _, err := content.ParseTemplateType("t.yaml", []byte(src)); err != nil {
			t.Errorf("ParseTemplateType: %v", err)
		}
	})
}

// writeHuge writes a sparse file of size bytes: cheap to create, and only
// a reader that stops early is cheap to refuse it.
func writeHuge(t *testing.T, path string, size int64) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString("kind: Bundle\nvendor: acme\ndescription: \""); err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// checkTooLarge asserts the error for an oversized source file.
func checkTooLarge(t *testing.T, err error, path string, start time.Time) {
	t.Helper()
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("refusing the file took %v, want well under a second", d)
	}
	if err == nil {
		t.Fatal("no error, want the file refused as too large")
	}
	if !errors.Is(err, content.ErrTooLarge) {
		t.Errorf("errors.Is(%q, ErrTooLarge) = false, want true", err)
	}
	want := fmt.Sprintf("%s: byte offset %d: file is larger than the %d MiB limit", path, content.MaxSourceSize, content.MaxSourceSize>>20)
	if !strings.Contains(err.Error(), want) {
		t.Errorf("error = %q, want it to contain %q", err, want)
	}
	checkLocated(t, err, path)
}

func TestLoadTooLarge(t *testing.T) {
	const size = 100 << 20
	t.Run("load-bundle", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "huge.yaml")
		writeHuge(t, path, size)
		start := time.Now()
		_, err := content.LoadBundle(path)
		checkTooLarge(t, err, path, start)
	})
	t.Run("load-catalog-types", func(t *testing.T) {
		dir := t.TempDir()
		path := filepath.Join(dir, "huge.yaml")
		writeHuge(t, path, size)
		start := time.Now()
		_, err := content.LoadCatalog(dir, "")
		checkTooLarge(t, err, path, start)
	})
	t.Run("load-catalog-manifests", func(t *testing.T) {
		dir := t.TempDir()
		path := filepath.Join(dir, "huge.json")
		writeHuge(t, path, size)
		start := time.Now()
		_, err := content.LoadCatalog("", dir)
		checkTooLarge(t, err, path, start)
	})
	t.Run("one-byte-over", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "over.yaml")
		writeHuge(t, path, content.MaxSourceSize+1)
		start := time.Now()
		_, err := content.LoadBundle(path)
		checkTooLarge(t, err, path, start)
	})
	t.Run("endless-file", func(t *testing.T) {
		// A pipe whose writer never closes it: a loader that read until
		// end of file would never return. (Unlike /dev/zero, a loader
		// that gets this wrong waits instead of eating all memory.)
		mkfifo, err := exec.LookPath("mkfifo")
		if err != nil {
			t.Skip("no mkfifo")
		}
		path := filepath.Join(t.TempDir(), "pipe.yaml")
		if out, err := exec.Command(mkfifo, path).CombinedOutput(); err != nil {
			t.Skipf("mkfifo: %v: %s", err, out)
		}
		stop, writerDone := make(chan struct{}), make(chan struct{})
		go func() {
			defer close(writerDone)
			w, err := os.OpenFile(path, os.O_WRONLY, 0)
			if err != nil {
				return
			}
			defer w.Close()
			chunk := make([]byte, 1<<20)
			for n := 0; n <= content.MaxSourceSize+len(chunk); n += len(chunk) {
				if _, err := w.Write(chunk); err != nil {
					return // the reader stopped reading: what we want
				}
			}
			<-stop // hold the pipe open: no end of file
		}()
		done := make(chan error, 1)
		start := time.Now()
		go func() { _, err := content.LoadBundle(path); done <- err }()
		select {
		case err := <-done:
			close(stop)
			<-writerDone
			checkTooLarge(t, err, path, start)
		case <-time.After(30 * time.Second):
			close(stop) // let the reader see end of file and return
			<-done
			t.Fatal("LoadBundle on a pipe that never ends did not return: it reads until end of file, not up to the limit")
		}
	})
	t.Run("at-the-limit", func(t *testing.T) {
		// A file of exactly MaxSourceSize bytes is read and parsed, so the
		// error is about its content, not its size.
		path := filepath.Join(t.TempDir(), "limit.yaml")
		writeHuge(t, path, content.MaxSourceSize)
		_, err := content.LoadBundle(path)
		if err == nil || errors.Is(err, content.ErrTooLarge) {
			t.Fatalf("error = %v, want a content error that is not ErrTooLarge", err)
		}
		checkLocated(t, err, path)
	})
}

func TestLoadCatalog(t *testing.T) {
	write := func(t *testing.T, dir, name, src string) string {
		t.Helper()
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	const goodType = "name: ipc\nversion: 3\nfields: [{index: 1, name: a, type: string}]\n"
	const goodManifest = "agent_version: 7.11\nplatform: windows\ntemplate_types: {ipc@3: 1}\n"

	t.Run("examples", func(t *testing.T) {
		dir := filepath.Join("..", "..", "examples", "content")
		cat, err := content.LoadCatalog(filepath.Join(dir, "template-types"), filepath.Join(dir, "manifests"))
		if err != nil {
			t.Fatalf("LoadCatalog: %v", err)
		}
		tt := cat.Types[content.TypeRef{Name: "ipc", Version: 3}]
		if len(cat.Types) != 1 || tt == nil || len(tt.Fields) != 21 {
			t.Fatalf("types = %v, want ipc@3 with 21 fields", cat.Types)
		}
		var agents []string
		for _, m := range cat.Manifests {
			agents = append(agents, m.Agent())
		}
		if got, want := strings.Join(agents, "; "), "7.10.0 (windows); 7.11.0 (windows); 7.12.0 (windows)"; got != want {
			t.Errorf("manifests = %s, want %s", got, want)
		}
	})
	t.Run("skips-other-files", func(t *testing.T) {
		types, manifests := t.TempDir(), t.TempDir()
		write(t, types, "ipc.yml", goodType)
		write(t, types, "README.md", "not: [yaml")
		if err := os.Mkdir(filepath.Join(types, "old.yaml"), 0o755); err != nil {
			t.Fatal(err)
		}
		write(t, manifests, "a.json", `{"agent_version": "7.12", "platform": "windows", "template_types": {"ipc@3": 1}}`)
		write(t, manifests, "b.yaml", goodManifest)
		cat, err := content.LoadCatalog(types, manifests)
		if err != nil {
			t.Fatalf("LoadCatalog: %v", err)
		}
		if len(cat.Types) != 1 || len(cat.Manifests) != 2 || cat.Manifests[0].Agent() != "7.11.0 (windows)" {
			t.Errorf("catalog = %d types, manifests %v; want 1 type, 7.11 before 7.12", len(cat.Types), cat.Manifests)
		}
	})
	t.Run("bad-type-file", func(t *testing.T) {
		types := t.TempDir()
		write(t, types, "a.yaml", goodType)
		path := write(t, types, "b.yaml", "name: dns\nversion: 1\nfeilds: []\n")
		_, err := content.LoadCatalog(types, "")
		if err == nil {
			t.Fatal("no error")
		}
		checkLocated(t, err, path)
		if want := path + `:3:1: template type: unknown key "feilds"`; !strings.Contains(err.Error(), want) {
			t.Errorf("error = %q, want it to contain %q", err, want)
		}
	})
	t.Run("bad-manifest-file", func(t *testing.T) {
		manifests := t.TempDir()
		path := write(t, manifests, "m.yaml", "agent_version: 7\nplatform: windows\ntemplate_types: {}\n")
		_, err := content.LoadCatalog("", manifests)
		if err == nil {
			t.Fatal("no error")
		}
		checkLocated(t, err, path)
		if want := path + `:1:16: agent_version: agent version "7": want MAJOR.MINOR[.PATCH]`; !strings.Contains(err.Error(), want) {
			t.Errorf("error = %q, want it to contain %q", err, want)
		}
	})
	t.Run("duplicate-type", func(t *testing.T) {
		types := t.TempDir()
		first := write(t, types, "a.yaml", goodType)
		second := write(t, types, "b.json", `{"name": "ipc", "version": 3, "fields": [{"index": 1, "name": "b", "type": "int"}]}`)
		_, err := content.LoadCatalog(types, "")
		if err == nil {
			t.Fatal("no error")
		}
		checkLocated(t, err, second)
		if want := fmt.Sprintf("template type ipc@3 is also defined at %s:1:1", first); !strings.Contains(err.Error(), want) {
			t.Errorf("error = %q, want it to contain %q", err, want)
		}
	})
	t.Run("duplicate-manifest", func(t *testing.T) {
		manifests := t.TempDir()
		first := write(t, manifests, "a.yaml", goodManifest)
		second := write(t, manifests, "b.yaml", strings.Replace(goodManifest, "7.11", "7.11.0", 1))
		_, err := content.LoadCatalog("", manifests)
		if err == nil {
			t.Fatal("no error")
		}
		checkLocated(t, err, second)
		if want := fmt.Sprintf("agent 7.11.0 (windows) is also described at %s:1:1", first); !strings.Contains(err.Error(), want) {
			t.Errorf("error = %q, want it to contain %q", err, want)
		}
	})
	t.Run("missing-directory", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "nope")
		_, err := content.LoadCatalog(dir, "")
		if !errors.Is(err, os.ErrNotExist) || !strings.Contains(fmt.Sprint(err), dir) {
			t.Errorf("error = %v, want a not-exist error naming %s", err, dir)
		}
	})
	t.Run("missing-bundle", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "nope.yaml")
		_, err := content.LoadBundle(path)
		if !errors.Is(err, os.ErrNotExist) || !strings.Contains(fmt.Sprint(err), path) {
			t.Errorf("error = %v, want a not-exist error naming %s", err, path)
		}
	})
}

func TestParseAgentVersion(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     content.AgentVersion
		err      string // substring; empty means no error
	}{
		{name: "major-minor-patch", in: "7.11.2", want: content.AgentVersion{Major: 7, Minor: 11, Patch: 2}},
		{name: "missing-patch-is-zero", in: "7.11", want: content.AgentVersion{Major: 7, Minor: 11}},
		{name: "zeros", in: "0.0.0", want: content.AgentVersion{}},
		{name: "largest", in: "4294967295.4294967295.4294967295", want: content.AgentVersion{Major: 1<<32 - 1, Minor: 1<<32 - 1, Patch: 1<<32 - 1}},
		{name: "one-part", in: "7", err: `agent version "7": want MAJOR.MINOR[.PATCH]`},
		{name: "four-parts", in: "7.11.0.1", err: "want MAJOR.MINOR[.PATCH]"},
		{name: "empty", in: "", err: "want MAJOR.MINOR[.PATCH]"},
		{name: "empty-part", in: "7..1", err: `part 2 "" is not a canonical number`},
		{name: "trailing-dot", in: "7.11.", err: `part 3 "" is not a canonical number`},
		{name: "leading-zero", in: "7.011", err: `part 2 "011" is not a canonical number`},
		{name: "v-prefix", in: "v7.11", err: `part 1 "v7" is not a number`},
		{name: "negative", in: "7.-1", err: `part 2 "-1" is not a number`},
		{name: "plus-sign", in: "+7.1", err: `part 1 "+7" is not a number`},
		{name: "overflow", in: "4294967296.0", err: `part 1 "4294967296" is not a number`},
		{name: "pre-release", in: "7.11.0-rc1", err: `part 3 "0-rc1" is not a canonical number`},
		{name: "spaces", in: " 7.11", err: "is not a number"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := content.ParseAgentVersion(tc.in)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("ParseAgentVersion(%q) = %v, %v; want error containing %q", tc.in, got, err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("ParseAgentVersion(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
			}
			if back, err := content.ParseAgentVersion(got.String()); err != nil || back != got {
				t.Errorf("round trip through %q = %v, %v", got.String(), back, err)
			}
		})
	}
}

func TestAgentVersionCompare(t *testing.T) {
	v := func(s string) content.AgentVersion {
		a, err := content.ParseAgentVersion(s)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	for _, tc := range []struct {
		a, b string
		want int
	}{
		{"7.11", "7.11.0", 0}, {"7.11.0", "7.12.0", -1}, {"7.12.0", "7.11.9", 1},
		{"7.9", "7.10", -1}, {"8.0", "7.99.99", 1}, {"7.11.1", "7.11.0", 1},
	} {
		if got := v(tc.a).Compare(v(tc.b)); got != tc.want {
			t.Errorf("%s.Compare(%s) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
		if got := v(tc.b).Compare(v(tc.a)); got != -tc.want {
			t.Errorf("%s.Compare(%s) = %d, want %d", tc.b, tc.a, got, -tc.want)
		}
	}
}

func TestParseVersionRange(t *testing.T) {
	for _, tc := range []struct {
		name, in        string
		canonical       string
		inside, outside []string // versions the range contains, and does not
		err             string
	}{
		{name: "empty-matches-all", in: "", canonical: "", inside: []string{"0.0.0", "7.11", "4294967295.0"}},
		{name: "blank-matches-all", in: "  \t ", canonical: "", inside: []string{"1.0"}},
		{name: "at-least", in: ">=7.11", canonical: ">=7.11.0", inside: []string{"7.11.0", "7.11.1", "8.0"}, outside: []string{"7.10.99", "6.0"}},
		{name: "above", in: ">7.11", canonical: ">7.11.0", inside: []string{"7.11.1", "7.12"}, outside: []string{"7.11.0", "7.10"}},
		{name: "at-most", in: "<=7.11.2", canonical: "<=7.11.2", inside: []string{"7.11.2", "0.1"}, outside: []string{"7.11.3", "7.12"}},
		{name: "below", in: "<8", err: `version range "<8": agent version "8": want MAJOR.MINOR[.PATCH]`},
		{name: "below-major", in: "<8.0", canonical: "<8.0.0", inside: []string{"7.99.99"}, outside: []string{"8.0.0", "8.0.1"}},
		{name: "exact", in: "=7.12.1", canonical: "=7.12.1", inside: []string{"7.12.1"}, outside: []string{"7.12.0", "7.12.2"}},
		{name: "bare-version-is-exact", in: "7.12", canonical: "=7.12.0", inside: []string{"7.12.0"}, outside: []string{"7.12.1"}},
		{name: "conjunction", in: ">=7.11 <8.0", canonical: ">=7.11.0 <8.0.0", inside: []string{"7.11", "7.99.1"}, outside: []string{"7.10", "8.0"}},
		{name: "extra-spaces", in: "  >=7.11   <7.12  ", canonical: ">=7.11.0 <7.12.0", inside: []string{"7.11.5"}, outside: []string{"7.12"}},
		{name: "empty-intersection", in: ">=8.0 <7.0", canonical: ">=8.0.0 <7.0.0", outside: []string{"7.5", "8.0", "6.0"}},
		{name: "space-after-op", in: ">= 7.11", err: `version range ">= 7.11": agent version ""`},
		{name: "unknown-op", in: "~7.11", err: `agent version "~7.11"`},
		{name: "double-op", in: ">>7.11", err: `agent version ">7.11"`},
		{name: "comma-separated", in: ">=7.11,<8.0", err: `agent version "7.11,<8.0"`},
		{name: "bad-version", in: ">=7.x", err: `part 2 "x" is not a number`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := content.ParseVersionRange(tc.in)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("ParseVersionRange(%q) = %q, %v; want error containing %q", tc.in, r, err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseVersionRange(%q): %v", tc.in, err)
			}
			if got := r.String(); got != tc.canonical {
				t.Errorf("String() = %q, want %q", got, tc.canonical)
			}
			// The canonical form parses back to the same range.
			if back, err := content.ParseVersionRange(r.String()); err != nil || back.String() != r.String() {
				t.Errorf("reparse of %q = %q, %v", r.String(), back.String(), err)
			}
			for _, want := range []struct {
				versions []string
				contains bool
			}{{tc.inside, true}, {tc.outside, false}} {
				for _, s := range want.versions {
					v, err := content.ParseAgentVersion(s)
					if err != nil {
						t.Fatal(err)
					}
					if got := r.Contains(v); got != want.contains {
						t.Errorf("%q.Contains(%s) = %v, want %v", tc.in, v, got, want.contains)
					}
				}
			}
		})
	}
}
