package trust

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func (f *fixture) open(t *testing.T, metaDir string) (*Session, error) {
	t.Helper()
	root := mustRead(t, filepath.Join(f.repo.Dir, "root.json"))
	return Open(ClientConfig{MetadataURL: f.url + "/tuf/metadata/", TargetsURL: f.url + "/tuf/targets/", Root: root,
		MetadataDir: metaDir, TargetsDir: t.TempDir()})
}

// wantNothingStaged: after a refused download the staging directory holds
// no file a loader could pick up, not even a partial one.
func wantNothingStaged(t *testing.T, dir string) {
	t.Helper()
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		t.Errorf("staged after a refusal: %s", e.Name())
	}
}

func TestStageVerifiesBeforeRename(t *testing.T) {
	f := newFixture(t)
	s, err := f.open(t, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	// A download killed half-way left a partial file: staging starts over.
	mustWrite(t, filepath.Join(dir, "293.bundle.unverified"), []byte("RFCB\x01 bun"))
	file, info, err := s.Stage("acme/ipc/293.bundle", dir)
	if err != nil {
		t.Fatal(err)
	}
	if file != filepath.Join(dir, "293.bundle") || string(mustRead(t, file)) != string(f.content) || info.Length != int64(len(f.content)) {
		t.Fatalf("staged %s (%+v): %q", file, info, mustRead(t, file))
	}
	if _, err := os.Stat(file + ".unverified"); err == nil {
		t.Error("the .unverified file is left behind")
	}
}

func TestStageRefusesAndStagesNothing(t *testing.T) {
	for _, tc := range []struct {
		name   string
		attack func(t *testing.T, f *fixture)
		target string
		want   error
	}{
		{"tampered-bytes", func(t *testing.T, f *fixture) {
			m, _ := filepath.Glob(filepath.Join(f.repo.Dir, "targets", "acme", "ipc", "*.293.bundle"))
			mustWrite(t, m[0], []byte("RFCB\x01 bundle 666"))
		}, "acme/ipc/293.bundle", nil},
		{"endless-data", func(t *testing.T, f *fixture) {
			m, _ := filepath.Glob(filepath.Join(f.repo.Dir, "targets", "acme", "ipc", "*.293.bundle"))
			mustWrite(t, m[0], append(mustRead(t, m[0]), make([]byte, 1<<20)...))
		}, "acme/ipc/293.bundle", ErrTooLong},
		{"truncated", func(t *testing.T, f *fixture) {
			m, _ := filepath.Glob(filepath.Join(f.repo.Dir, "targets", "acme", "ipc", "*.293.bundle"))
			mustWrite(t, m[0], mustRead(t, m[0])[:4])
		}, "acme/ipc/293.bundle", nil},
		{"unsigned-target", func(t *testing.T, f *fixture) {}, "acme/ipc/294.bundle", nil},
		{"on-the-deny-list", func(t *testing.T, f *fixture) {
			if err := Deny(f.repo, DenyEntry{Target: "acme/ipc/293.bundle", Reason: "halted: crashes", At: f.now}, f.now); err != nil {
				t.Fatal(err)
			}
		}, "acme/ipc/293.bundle", ErrDenied},
		{"canary-name-on-the-deny-list", func(t *testing.T, f *fixture) {
			if err := Deny(f.repo, DenyEntry{Target: "acme/ipc/293.bundle", Reason: "halted: crashes", At: f.now}, f.now); err != nil {
				t.Fatal(err)
			}
		}, "acme/ipc/canary/293.bundle", ErrDenied},
		{"denied-name-is-not-a-vendor-target", func(t *testing.T, f *fixture) {}, "globex/ipc/1.bundle", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			tc.attack(t, f)
			s, err := f.open(t, t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			file, _, err := s.Stage(tc.target, dir)
			if err == nil {
				t.Fatalf("staged %s", file)
			}
			t.Logf("refused: %v", err)
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("error %v, want %v", err, tc.want)
			}
			wantNothingStaged(t, dir)
		})
	}
}

// Expired metadata (a frozen repository, or a clock far ahead) is an
// ErrExpired the agent can report, never a reason to stop verifying.
func TestExpiredMetadataIsErrExpired(t *testing.T) {
	f := newFixture(t)
	if err := f.repo.stamp(f.now.Add(-48*time.Hour), 3); err != nil {
		t.Fatal(err)
	}
	_, err := f.open(t, t.TempDir())
	if !errors.Is(err, ErrExpired) {
		t.Fatalf("expired timestamp: got %v, want ErrExpired", err)
	}
}

func TestSessionDenyList(t *testing.T) {
	f := newFixture(t)
	s, err := f.open(t, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if l, err := s.DenyList(); err != nil || len(l.Denied) != 0 {
		t.Fatalf("deny list before any entry: %+v, %v", l, err)
	}
	if err := Deny(f.repo, DenyEntry{Target: "acme/ipc/293.bundle", Reason: "halted", At: f.now}, f.now); err != nil {
		t.Fatal(err)
	}
	if s, err = f.open(t, t.TempDir()); err != nil {
		t.Fatal(err)
	}
	if l, err := s.DenyList(); err != nil || !l.Denies("acme/ipc/293.bundle") {
		t.Fatalf("deny list after a halt: %+v, %v", l, err)
	}
}
