// Package version says which build of the control plane is running: the
// version `ringfence version` prints, /healthz answers and the
// ringfence_build_info metric carries.
//
// A release build names its version with the linker:
//
//	go build -ldflags "-X github.com/ringfence/ringfence/internal/version.version=v1.4.0" ./cmd/ringfence
//
// Without it, the module version Go recorded in the binary is used (set by
// `go install ...@v1.4.0`, or a pseudo-version when Go stamped the build
// from its git checkout), and failing that "devel". The revision, its time
// and whether the tree had uncommitted changes come from the VCS stamp Go
// adds to builds from a git checkout (not to `go run` or test binaries,
// nor when GOFLAGS has -buildvcs=false).
package version

import (
	"runtime"
	"runtime/debug"
	"sync"
)

// version is set by -ldflags "-X github.com/ringfence/ringfence/internal/version.version=...".
var version string

// Info describes the running build.
type Info struct {
	// Version is -ldflags' version, else the module version, else "devel".
	Version string `json:"version"`
	// Revision is the VCS commit the binary was built from ("" unknown);
	// Time its commit time (RFC 3339), Modified whether the tree had
	// uncommitted changes.
	Revision string `json:"revision,omitempty"`
	Time     string `json:"time,omitempty"`
	Modified bool   `json:"modified,omitempty"`
	// Go is the toolchain's version; Platform GOOS/GOARCH.
	Go       string `json:"go"`
	Platform string `json:"platform"`
}

var (
	once sync.Once
	info Info
)

// Get reads the build's version once.
func Get() Info {
	once.Do(func() { info = read(version, debug.ReadBuildInfo) })
	return info
}

// String is the running build's version.
func String() string { return Get().Version }

func read(linked string, buildInfo func() (*debug.BuildInfo, bool)) Info {
	in := Info{Version: linked, Go: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	bi, ok := buildInfo()
	if ok {
		if in.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			in.Version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				in.Revision = s.Value
			case "vcs.time":
				in.Time = s.Value
			case "vcs.modified":
				in.Modified = s.Value == "true"
			}
		}
	}
	if in.Version == "" {
		in.Version = "devel"
	}
	return in
}
