package trust

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"
	"github.com/theupdateframework/go-tuf/v2/metadata/config"
	"github.com/theupdateframework/go-tuf/v2/metadata/fetcher"
	"github.com/theupdateframework/go-tuf/v2/metadata/updater"
)

// ClientConfig is what a verifying client needs: where the server
// publishes, the root it trusts, and where it keeps the metadata it has
// verified (so rollback protection survives restarts).
type ClientConfig struct {
	MetadataURL string // e.g. https://server/tuf/metadata/
	TargetsURL  string // e.g. https://server/tuf/targets/
	Root        []byte // the initial trusted root.json
	MetadataDir string
	TargetsDir  string
	// HTTP downloads targets; nil is a client with a 5-minute timeout.
	HTTP *http.Client
}

// Session is one verification cycle: a fresh go-tuf updater (TUF wants a
// new one per cycle) that has refreshed the metadata. Its trusted metadata
// persists in MetadataDir, so a restarted client still refuses anything
// older than what it saw.
type Session struct {
	cfg ClientConfig
	up  *updater.Updater
}

// ErrExpired is metadata past its expiry: a frozen repository, or a wrong
// clock on the client. Protection stays on; the client keeps what it runs
// and says so.
var ErrExpired = errors.New("signed-update metadata expired (a frozen repository, or this machine's clock is wrong)")

// ErrDenied is a target on the signed deny list.
var ErrDenied = errors.New("on the signed deny list")

// ErrTooLong is a download longer than its signed length (endless data).
var ErrTooLong = errors.New("target longer than its signed length")

// ErrUnreachable: the repository or its target files could not be
// reached (the server answered 5xx or 429). See Unreachable.
var ErrUnreachable = errors.New("signed-update repository unreachable")

// Unreachable reports whether err is the network's, not the content's:
// connection refused or reset, a timeout, a cut-off body, or a server
// that answered 5xx or 429. Such a failure says nothing about the
// release; the agent tries again next cycle rather than report that the
// version failed to apply (a control-plane outage otherwise reads as a
// wave of apply failures: the simulator's live outage test halted on
// one).
func Unreachable(err error) bool {
	var netErr net.Error
	var urlErr *url.Error
	var httpErr *metadata.ErrDownloadHTTP
	switch {
	case err == nil:
		return false
	case errors.Is(err, ErrUnreachable), errors.Is(err, io.ErrUnexpectedEOF):
		return true
	case errors.As(err, &httpErr):
		return httpErr.StatusCode >= 500 || httpErr.StatusCode == http.StatusTooManyRequests
	case errors.As(err, &netErr), errors.As(err, &urlErr):
		return true
	}
	return false
}

// Open starts a verification cycle: it refreshes the metadata from the
// server, checking every signature, version and expiry.
func Open(c ClientConfig) (*Session, error) {
	cfg, err := config.New(c.MetadataURL, c.Root)
	if err != nil {
		return nil, fmt.Errorf("tuf client: %w", err)
	}
	cfg.RemoteTargetsURL = c.TargetsURL
	cfg.LocalMetadataDir, cfg.LocalTargetsDir = c.MetadataDir, c.TargetsDir
	if c.HTTP == nil {
		c.HTTP = &http.Client{Timeout: 5 * time.Minute}
	}
	// Metadata comes through the same client as targets: its TLS roots
	// (the agent's --ca) and its timeout, not the process's defaults.
	f := fetcher.NewDefaultFetcher()
	f.SetHTTPClient(c.HTTP)
	cfg.Fetcher = f
	up, err := updater.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("tuf client: %w", classify(err))
	}
	if err := up.Refresh(); err != nil {
		return nil, fmt.Errorf("tuf refresh: %w", classify(err))
	}
	return &Session{cfg: c, up: up}, nil
}

func classify(err error) error {
	var exp *metadata.ErrExpiredMetadata
	if errors.As(err, &exp) {
		return fmt.Errorf("%w: %v", ErrExpired, err)
	}
	return err
}

// info is the signed description of a target, found by walking the
// delegations.
func (s *Session) info(target string) (*metadata.TargetFiles, error) {
	tf, err := s.up.GetTargetInfo(target)
	if err != nil {
		return nil, fmt.Errorf("tuf target %s: %w", target, classify(err))
	}
	return tf, nil
}

// Stage downloads a target into dir and returns the file's path. A target
// on the deny list (under its own or its canary name) is refused first.
// The bytes stream into NAME.unverified, hashed as they come and cut off
// past the signed length; only bytes that match the signed length and hash
// are renamed to NAME (after an fsync), so a failed or interrupted download
// leaves nothing a loader could pick up.
func (s *Session) Stage(target, dir string) (string, TargetInfo, error) {
	deny, err := s.DenyList()
	if err != nil {
		return "", TargetInfo{}, err
	}
	for _, e := range deny.Denied {
		if e.Target == target || CanaryTarget(e.Target) == target {
			return "", TargetInfo{}, fmt.Errorf("%s: %w (%s)", target, ErrDenied, e.Reason)
		}
	}
	tf, err := s.info(target)
	if err != nil {
		return "", TargetInfo{}, err
	}
	ti := TargetInfo{Name: target, SHA256: hex.EncodeToString(tf.Hashes["sha256"]), Length: tf.Length}
	final := filepath.Join(dir, path.Base(target))
	tmp := final + ".unverified"
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", ti, err
	}
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return "", ti, err
	}
	err = s.download(tf, f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, final)
	}
	if err != nil {
		os.Remove(tmp)
		return "", ti, fmt.Errorf("tuf download %s: %w", target, err)
	}
	return final, ti, nil
}

// Bytes downloads and verifies a small target in memory.
func (s *Session) Bytes(target string) ([]byte, error) {
	tf, err := s.info(target)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := s.download(tf, &buf); err != nil {
		return nil, fmt.Errorf("tuf download %s: %w", target, err)
	}
	return buf.Bytes(), nil
}

// download streams a target's bytes (stored under their hash, as in a
// consistent snapshot) into w, checking length and hash.
func (s *Session) download(tf *metadata.TargetFiles, w io.Writer) error {
	want := tf.Hashes["sha256"]
	if len(want) == 0 {
		return errors.New("the signed metadata gives no sha256 for it")
	}
	dir, base := path.Split(tf.Path)
	url := strings.TrimRight(s.cfg.TargetsURL, "/") + "/" + dir + hex.EncodeToString(want) + "." + base
	resp, err := s.cfg.HTTP.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests {
		return fmt.Errorf("%w: GET %s: %s", ErrUnreachable, url, resp.Status)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(w, h), io.LimitReader(resp.Body, tf.Length+1))
	if err != nil {
		return err
	}
	switch {
	case n > tf.Length:
		return fmt.Errorf("%w (%d bytes signed)", ErrTooLong, tf.Length)
	case n < tf.Length:
		return fmt.Errorf("got %d bytes, %d signed", n, tf.Length)
	case !bytes.Equal(h.Sum(nil), want):
		return fmt.Errorf("sha256 %x, signed %x: the bytes are not the ones the vendor signed", h.Sum(nil), []byte(want))
	}
	if f, ok := w.(*os.File); ok {
		return f.Sync()
	}
	return nil
}

// DenyList fetches the signed deny list (empty before the first entry).
func (s *Session) DenyList() (DenyList, error) {
	b, err := s.Bytes(DenyTarget)
	if err != nil {
		// go-tuf has no typed error for a target no role lists.
		if strings.HasSuffix(err.Error(), "target "+DenyTarget+" not found") {
			return DenyList{}, nil
		}
		return DenyList{}, err
	}
	var l DenyList
	if err := json.Unmarshal(b, &l); err != nil {
		return DenyList{}, fmt.Errorf("deny list: %w", err)
	}
	return l, nil
}

// Fetch verifies a target in a fresh session and returns its bytes; any
// attack the framework defends against is an error, with nothing
// returned.
func Fetch(c ClientConfig, target string) ([]byte, error) {
	s, err := Open(c)
	if err != nil {
		return nil, err
	}
	return s.Bytes(target)
}
