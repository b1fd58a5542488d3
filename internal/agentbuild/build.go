// Package agentbuild is the envelope of an agent build: what a vendor
// publishes to an agent channel and what the agent installs when it
// updates itself. A build is one executable with a signed header naming
// the platform, architecture and agent version it is: the vendor's TUF
// signature covers the header with the bytes, so neither the server nor a
// network in between can pass a Windows build off to a Linux host or
// relabel a version.
//
// The format is the magic line, one line of JSON (the header), then the
// executable's bytes:
//
//	RINGFENCE-AGENT-BUILD 1\n
//	{"platform":"linux","arch":"amd64","agent_version":"7.13.0","size":N,"sha256":"..."}\n
//	<N bytes>
package agentbuild

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
)

// Magic opens every build.
const Magic = "RINGFENCE-AGENT-BUILD 1\n"

// maxHeader bounds the header line, so a hostile file cannot make a
// reader buffer it whole.
const maxHeader = 4 << 10

// Platforms are the platforms a build may be for: the agent's.
var Platforms = []string{"windows", "linux", "darwin"}

// Header says what the executable is.
type Header struct {
	Platform     string `json:"platform"`
	Arch         string `json:"arch"`
	AgentVersion string `json:"agent_version"`
	// Size and SHA256 are the executable's, checked when it is read.
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

var (
	archRE    = regexp.MustCompile(`^[a-z0-9]{1,16}$`)
	versionRE = regexp.MustCompile(`^[0-9A-Za-z.+-]{1,64}$`)
)

// Validate checks the header's fields, naming the first that is wrong.
func (h Header) Validate() error {
	switch {
	case !slices.Contains(Platforms, h.Platform):
		return fmt.Errorf("platform %q: want one of %s", h.Platform, strings.Join(Platforms, ", "))
	case !archRE.MatchString(h.Arch):
		return fmt.Errorf("arch %q: want a GOARCH such as amd64 or arm64", h.Arch)
	case !versionRE.MatchString(h.AgentVersion):
		return fmt.Errorf("agent_version %q: want a version such as 7.13.0", h.AgentVersion)
	case h.Size <= 0:
		return fmt.Errorf("size %d: an empty build", h.Size)
	case len(h.SHA256) != 64 || strings.ToLower(h.SHA256) != h.SHA256:
		return fmt.Errorf("sha256 %q: want 64 lower-case hex digits", h.SHA256)
	}
	if _, err := hex.DecodeString(h.SHA256); err != nil {
		return fmt.Errorf("sha256 %q: %v", h.SHA256, err)
	}
	return nil
}

// Pack wraps an executable in its envelope; h's Size and SHA256 are set
// from exe.
func Pack(h Header, exe []byte) ([]byte, error) {
	sum := sha256.Sum256(exe)
	h.Size, h.SHA256 = int64(len(exe)), hex.EncodeToString(sum[:])
	if err := h.Validate(); err != nil {
		return nil, fmt.Errorf("agent build: %w", err)
	}
	line, err := json.Marshal(h)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, len(Magic)+len(line)+1+len(exe))
	out = append(append(append(append(out, Magic...), line...), '\n'), exe...)
	return out, nil
}

// Is reports whether b starts like a build.
func Is(b []byte) bool { return bytes.HasPrefix(b, []byte(Magic)) }

// ErrNotABuild is a file that does not start with Magic.
var ErrNotABuild = errors.New("not an agent build (made by ringfence publish --build)")

// ReadHeader reads the magic line and the header from r, leaving r at the
// executable's first byte.
func ReadHeader(r *bufio.Reader) (Header, error) {
	var h Header
	magic := make([]byte, len(Magic))
	if _, err := io.ReadFull(r, magic); err != nil || string(magic) != Magic {
		return h, ErrNotABuild
	}
	var line []byte
	for {
		frag, err := r.ReadSlice('\n')
		line = append(line, frag...)
		if len(line) > maxHeader {
			return h, fmt.Errorf("agent build header: longer than %d bytes", maxHeader)
		}
		if err == nil {
			break
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			return h, fmt.Errorf("agent build header: %w", err)
		}
	}
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&h); err != nil {
		return h, fmt.Errorf("agent build header: %w", err)
	}
	if err := h.Validate(); err != nil {
		return h, fmt.Errorf("agent build header: %w", err)
	}
	return h, nil
}

// Parse reads a whole build held in memory: its header and executable,
// checked against the header's size and hash.
func Parse(b []byte) (Header, []byte, error) {
	var exe bytes.Buffer
	h, err := Extract(bytes.NewReader(b), &exe)
	if err != nil {
		return h, nil, err
	}
	return h, exe.Bytes(), nil
}

// Extract copies the executable of the build read from r to w, checking
// its size and hash against the header; it returns the header.
func Extract(r io.Reader, w io.Writer) (Header, error) {
	br := bufio.NewReader(r)
	h, err := ReadHeader(br)
	if err != nil {
		return h, err
	}
	hash := sha256.New()
	n, err := io.Copy(io.MultiWriter(w, hash), io.LimitReader(br, h.Size+1))
	if err != nil {
		return h, fmt.Errorf("agent build: %w", err)
	}
	if n != h.Size {
		return h, fmt.Errorf("agent build: the executable is %d bytes or more, its header says %d", n, h.Size)
	}
	if got := hex.EncodeToString(hash.Sum(nil)); got != h.SHA256 {
		return h, fmt.Errorf("agent build: the executable's sha256 is %s, its header says %s", got, h.SHA256)
	}
	return h, nil
}
