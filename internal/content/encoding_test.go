package content_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/ringfence/ringfence/internal/content"
	"github.com/ringfence/ringfence/internal/content/synth"
)

// compiledExamples compiles every example bundle against the example
// template types, plus a synthetic bundle that uses every indexable op, so
// the damage tests below run on real bytes of a few shapes and sizes.
func compiledExamples(t *testing.T) map[string][]byte {
	t.Helper()
	cat, err := content.LoadCatalog(filepath.Join(examplesDir, "template-types"), filepath.Join(examplesDir, "manifests"))
	if err != nil {
		t.Fatal(err)
	}
	paths, err := filepath.Glob(filepath.Join(examplesDir, "bundles", "*.yaml"))
	if err != nil || len(paths) < 2 {
		t.Fatalf("want at least two example bundles, got %d (%v)", len(paths), err)
	}
	out := map[string][]byte{}
	for _, path := range paths {
		b, err := content.LoadBundle(path)
		if err != nil {
			t.Fatal(err)
		}
		c, fs := content.Compile(b, cat.Types[b.TemplateType])
		if c == nil {
			t.Fatalf("%s does not compile: %v", path, fs)
		}
		out[filepath.Base(path)] = c.Marshal()
	}
	out["synth-60"] = synth.Compiled(60, 7).Marshal()
	for name, b := range out {
		if _, err := content.Unmarshal(b); err != nil {
			t.Fatalf("%s: Unmarshal refuses what Marshal wrote: %v", name, err)
		}
	}
	return out
}

// decodeError asserts that err is a *DecodeError with an offset inside the
// input and returns it.
func decodeError(t *testing.T, what string, err error, n int) *content.DecodeError {
	t.Helper()
	var de *content.DecodeError
	if !errors.As(err, &de) {
		t.Fatalf("%s: got %v (%T), want a *DecodeError", what, err, err)
	}
	if de.Offset < 0 || de.Offset > n {
		t.Fatalf("%s: %v: offset outside the %d input bytes", what, err, n)
	}
	return de
}

// TestCompiledEveryBitFlipRefused flips each bit of real compiled bundles,
// one at a time, and truncates them at every length. Every result must be
// refused, and a flip past the format version must be refused by the
// header (length or checksum) as corrupt, before any byte of the body is
// decoded.
func TestCompiledEveryBitFlipRefused(t *testing.T) {
	for name, good := range compiledExamples(t) {
		t.Run(name, func(t *testing.T) {
			flips := 0
			for i := range len(good) * 8 {
				off := i / 8
				b := slices.Clone(good)
				b[off] ^= 1 << (i % 8)
				c, err := content.Unmarshal(b)
				if err == nil {
					t.Fatalf("bit %d of byte %d flipped: decoded as %s, want a refusal", i%8, off, c.Name())
				}
				de := decodeError(t, "flip", err, len(b))
				var want string
				switch {
				case off < 4:
					want = "bad magic"
				case off == 4:
					want = "format"
				case off < 9:
					want = "the bytes are corrupt" // the length no longer fits
				default:
					want = "checksum mismatch"
				}
				if !strings.Contains(de.Msg, want) {
					t.Fatalf("bit %d of byte %d flipped: got %v, want %q", i%8, off, err, want)
				}
				if off >= 9 && (de.Offset != 9 || !strings.Contains(de.Msg, "the bytes are corrupt")) {
					t.Fatalf("bit %d of byte %d flipped: got %v, want the checksum at offset 9 called corrupt", i%8, off, err)
				}
				flips++
			}
			for n := range len(good) {
				if _, err := content.Unmarshal(good[:n]); err == nil {
					t.Fatalf("truncated to %d of %d bytes: decoded, want a refusal", n, len(good))
				} else {
					decodeError(t, "truncation", err, n)
				}
			}
			for _, extra := range [][]byte{{0}, []byte("garbage")} {
				b := append(slices.Clone(good), extra...)
				_, err := content.Unmarshal(b)
				if de := decodeError(t, "appended", err, len(b)); !strings.Contains(de.Msg, "trailing bytes") || de.Offset != len(good) {
					t.Fatalf("%d bytes appended: got %v, want trailing bytes at offset %d", len(extra), err, len(good))
				}
			}
			t.Logf("%d bytes: %d single-bit flips and %d truncations, all refused", len(good), flips, len(good))
		})
	}
}

// TestUnmarshalOldAndFutureFormats: format 1 had no checksum and is
// refused with a way forward; an unknown format says which one this build
// reads.
func TestUnmarshalOldAndFutureFormats(t *testing.T) {
	good := compiledExamples(t)["ipc-292.yaml"]
	body := good[13:]
	tests := []struct {
		name string
		b    []byte
		want []string
	}{
		{"format-1", append([]byte("RFCB\x01"), body...), []string{"byte offset 4", "RFCB format 1", "recompile", "ringfence content compile"}},
		{"format-1-magic-only", []byte("RFCB\x01"), []string{"RFCB format 1", "recompile"}},
		{"format-3", append([]byte("RFCB\x03"), good[5:]...), []string{"byte offset 4", "unknown RFCB format 3", "reads format 2"}},
		{"format-0", append([]byte("RFCB\x00"), good[5:]...), []string{"unknown RFCB format 0"}},
		{"magic-only", []byte("RFCB"), []string{"byte offset 4", "no format version"}},
		{"header-truncated", good[:12], []string{"byte offset 12", "truncated header"}},
		{"not-compiled", []byte("kind: Bundle\n"), []string{"byte offset 0", "bad magic"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := content.Unmarshal(tt.b)
			decodeError(t, tt.name, err, len(tt.b))
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("got %v, want %q", err, w)
				}
			}
		})
	}
}

// TestUnmarshalCanonicalBehindChecksum: a body that is damaged and then
// resealed with a valid checksum still meets the decoder's own checks, so
// the checksum adds to canonicality and the limits rather than replacing
// them.
func TestUnmarshalCanonicalBehindChecksum(t *testing.T) {
	good := compiledExamples(t)["ipc-292.yaml"]
	overlong := append(slices.Clone(good[:13]), good[13]|0x80, 0) // vendor length, same value in two bytes
	overlong = append(overlong, good[14:]...)
	tests := []struct {
		name string
		b    []byte
		want string
	}{
		{"overlong-varint", content.Reseal(overlong), "non-canonical"},
		{"trailing-inside-body", content.Reseal(append(slices.Clone(good), 0)), "trailing bytes after the encoded bundle"},
		{"vendor-length-past-end", content.Reseal(append(slices.Clone(good[:13]), 0x7f)), "exceeds the remaining"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := content.Unmarshal(tt.b)
			if de := decodeError(t, tt.name, err, len(tt.b)); !strings.Contains(de.Msg, tt.want) {
				t.Fatalf("got %v, want %q", err, tt.want)
			}
		})
	}
}

// TestFuzzUnmarshalSeedsReachDecoder: the stored FuzzUnmarshal inputs are
// regressions in the body decoder, so their headers must be valid or the
// checksum would refuse them before the code they guard.
func TestFuzzUnmarshalSeedsReachDecoder(t *testing.T) {
	paths, err := filepath.Glob(filepath.Join("testdata", "fuzz", "FuzzUnmarshal", "*"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no FuzzUnmarshal seeds (%v)", err)
	}
	for _, path := range paths {
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		header, lit, _ := strings.Cut(strings.TrimSpace(string(raw)), "\n")
		lit, ok := strings.CutPrefix(lit, "[]byte(")
		lit, ok2 := strings.CutSuffix(lit, ")")
		if header != "go test fuzz v1" || !ok || !ok2 {
			t.Fatalf("%s: not a one-[]byte fuzz input", path)
		}
		s, err := strconv.Unquote(lit)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if b := []byte(s); !bytes.Equal(content.Reseal(b), b) || len(b) < 13 {
			t.Errorf("%s: header length or checksum is wrong, so the decoder never sees the body", path)
		}
	}
}

// TestSourceReadingNamesCompiledBytes: every source parser names compiled
// bytes of any format as such; text that merely starts with the letters
// RFCB is still read as YAML.
func TestSourceReadingNamesCompiledBytes(t *testing.T) {
	good := compiledExamples(t)["ipc-292.yaml"]
	for _, b := range [][]byte{good, append([]byte("RFCB\x01"), good[13:]...), []byte("RFCB\x05"), append([]byte("RFCB\xfd"), good[5:]...)} {
		for _, kind := range []string{"bundle", "type", "manifest"} {
			err := parseAs(t, kind, "in.rfcb", b)
			want := fmt.Sprintf("in.rfcb: this is a compiled bundle (RFCB format %d), not a bundle source;", b[4])
			if err == nil || !strings.HasPrefix(err.Error(), want) {
				t.Errorf("%s parser on RFCB format %d: got %v, want %q", kind, b[4], err, want)
			}
		}
		if !content.IsCompiled(b) {
			t.Errorf("IsCompiled(%q...) = false", b[:5])
		}
	}
	for _, text := range []string{"RFCB: 1\n", "RFCB\n", "RFCBé: 1\n"} {
		if content.IsCompiled([]byte(text)) {
			t.Errorf("IsCompiled(%q) = true, want false", text)
		}
		if err := parseAs(t, "bundle", "in.yaml", []byte(text)); err == nil || strings.Contains(err.Error(), "compiled bundle") {
			t.Errorf("%q: got %v, want a YAML refusal that does not mention compiled bundles", text, err)
		}
	}
}
