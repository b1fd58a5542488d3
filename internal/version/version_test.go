package version

import (
	"runtime/debug"
	"testing"
)

func TestVersionPrecedence(t *testing.T) {
	stamped := func() (*debug.BuildInfo, bool) {
		return &debug.BuildInfo{Main: debug.Module{Path: "github.com/ringfence/ringfence", Version: "v0.0.0-20261207060552-f27f0124181c+dirty"},
			Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "f27f0124181c2477e6bb86d575a60ca71248d056"},
				{Key: "vcs.time", Value: "2026-12-07T06:05:52Z"}, {Key: "vcs.modified", Value: "true"}}}, true
	}
	devel := func() (*debug.BuildInfo, bool) {
		return &debug.BuildInfo{Main: debug.Module{Path: "github.com/ringfence/ringfence", Version: "(devel)"}}, true
	}
	none := func() (*debug.BuildInfo, bool) { return nil, false }

	for _, c := range []struct {
		name, linked string
		bi           func() (*debug.BuildInfo, bool)
		want         string
		revision     string
	}{
		{"linker wins", "v1.4.0", stamped, "v1.4.0", "f27f0124181c2477e6bb86d575a60ca71248d056"},
		{"module version", "", stamped, "v0.0.0-20261207060552-f27f0124181c+dirty", "f27f0124181c2477e6bb86d575a60ca71248d056"},
		{"unstamped build", "", devel, "devel", ""},
		{"no build info", "", none, "devel", ""},
		{"linker without build info", "v2.0.0-rc.1", none, "v2.0.0-rc.1", ""},
	} {
		got := read(c.linked, c.bi)
		if got.Version != c.want || got.Revision != c.revision {
			t.Errorf("%s: got version %q revision %q, want %q and %q", c.name, got.Version, got.Revision, c.want, c.revision)
		}
		if got.Go == "" || got.Platform == "" {
			t.Errorf("%s: toolchain or platform missing: %+v", c.name, got)
		}
	}
	if got := read("", stamped); !got.Modified || got.Time != "2026-12-07T06:05:52Z" {
		t.Errorf("vcs.modified and vcs.time not read: %+v", got)
	}
}

func TestGetIsStable(t *testing.T) {
	if a, b := Get(), Get(); a != b || a.Version == "" {
		t.Fatalf("Get: %+v then %+v", a, b)
	}
	if String() != Get().Version {
		t.Fatalf("String %q, Get().Version %q", String(), Get().Version)
	}
}
