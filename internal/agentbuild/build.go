// Package agentbuild is the envelope of an agent build: what a vendor
// publishes to an agent channel and what the agent installs when it
// updates itself. A build is one executable with a signed header naming
// the platform, architecture and agent version it is: the vendor's TUF
// signature covers the header with the bytes, so neither the server nor a
// network in between can pass a Windows build off to a Linux host or
// relabel a version.
//
// The format is the magic line, one line of JSON (the header), then the
// executable's bytes, then the worker's if the build has one:
//
//	RINGFENCE-AGENT-BUILD 1\n
//	{"platform":"linux","arch":"amd64","agent_version":"7.13.0","size":N,"sha256":"...","worker_size":M,"worker_sha256":"..."}\n
//	<N bytes of ringfence-agent><M bytes of ringfence-agent-worker>
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
	// WorkerSize and WorkerSHA256 are the worker executable's
	// (ringfence-agent-worker), which follows the agent's; 0 and "" for a
	// build without one (the agent then runs its own worker command, a
	// larger process).
	WorkerSize   int64  `json:"worker_size,omitempty"`
	WorkerSHA256 string `json:"worker_sha256,omitempty"`
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
	case !isSHA256(h.SHA256):
		return fmt.Errorf("sha256 %q: want 64 lower-case hex digits", h.SHA256)
	case h.WorkerSize < 0 || (h.WorkerSize == 0) != (h.WorkerSHA256 == ""):
		return fmt.Errorf("worker_size %d with worker_sha256 %q: give both or neither", h.WorkerSize, h.WorkerSHA256)
	case h.WorkerSize > 0 && !isSHA256(h.WorkerSHA256):
		return fmt.Errorf("worker_sha256 %q: want 64 lower-case hex digits", h.WorkerSHA256)
	}
	return nil
}

func isSHA256(s string) bool {
	_, err := hex.DecodeString(s)
	return len(s) == 64 && strings.ToLower(s) == s && err == nil
}

// Pack wraps an executable, and its worker if not nil, in the envelope;
// h's sizes and hashes are set from them.
func Pack(h Header, exe, worker []byte) ([]byte, error) {
	h.Size, h.SHA256 = int64(len(exe)), hexSum(exe)
	h.WorkerSize, h.WorkerSHA256 = 0, ""
	if len(worker) > 0 {
		h.WorkerSize, h.WorkerSHA256 = int64(len(worker)), hexSum(worker)
	}
	if err := h.Validate(); err != nil {
		return nil, fmt.Errorf("agent build: %w", err)
	}
	line, err := json.Marshal(h)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, len(Magic)+len(line)+1+len(exe)+len(worker))
	out = append(append(append(append(append(out, Magic...), line...), '\n'), exe...), worker...)
	return out, nil
}

func hexSum(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
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

// Parse reads a whole build held in memory: its header, executable and
// worker (nil without one), checked against the header's sizes and hashes.
func Parse(b []byte) (Header, []byte, []byte, error) {
	var exe, worker bytes.Buffer
	h, err := Extract(bytes.NewReader(b), &exe, &worker)
	if err != nil {
		return h, nil, nil, err
	}
	if h.WorkerSize == 0 {
		return h, exe.Bytes(), nil, nil
	}
	return h, exe.Bytes(), worker.Bytes(), nil
}

// Extract copies the executable of the build read from r to exe, and its
// worker to worker, checking each against the header's size and hash, and
// that nothing follows them; it returns the header.
func Extract(r io.Reader, exe, worker io.Writer) (Header, error) {
	br := bufio.NewReader(r)
	h, err := ReadHeader(br)
	if err != nil {
		return h, err
	}
	if err := copyChecked(exe, br, h.Size, h.SHA256, "executable"); err != nil {
		return h, err
	}
	if h.WorkerSize > 0 {
		if err := copyChecked(worker, br, h.WorkerSize, h.WorkerSHA256, "worker"); err != nil {
			return h, err
		}
	}
	if n, _ := io.CopyN(io.Discard, br, 1); n > 0 {
		return h, fmt.Errorf("agent build: bytes follow the %d its header names", h.Size+h.WorkerSize)
	}
	return h, nil
}

// copyChecked copies exactly size bytes of r to w, whose sha256 must be
// sum.
func copyChecked(w io.Writer, r io.Reader, size int64, sum, what string) error {
	hash := sha256.New()
	n, err := io.Copy(io.MultiWriter(w, hash), io.LimitReader(r, size))
	if err != nil {
		return fmt.Errorf("agent build: %s: %w", what, err)
	}
	if n != size {
		return fmt.Errorf("agent build: the %s is %d bytes, its header says %d", what, n, size)
	}
	if got := hex.EncodeToString(hash.Sum(nil)); got != sum {
		return fmt.Errorf("agent build: the %s's sha256 is %s, its header says %s", what, got, sum)
	}
	return nil
}
