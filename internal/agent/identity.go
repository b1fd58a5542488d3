package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/ringfence/ringfence/internal/protocol"
)

// Version is this agent's version, reported at enrolment and in every
// check-in; release builds set it with -ldflags "-X ...agent.Version=...".
var Version = "7.12.0"

// IdentityFile holds the device's identity in the data directory.
const IdentityFile = "device.json"

// Identity is who the device is to the server: written once at enrolment,
// readable by the agent's user only (it holds the device credential).
type Identity struct {
	Server       string `json:"server"`
	DeviceID     string `json:"device_id"`
	Credential   string `json:"credential"`
	Org          string `json:"org"`
	Platform     string `json:"platform"`
	OSBuild      string `json:"os_build"`
	AgentVersion string `json:"agent_version"`
	// AgentVersionSet: enrolment was told the agent version to report
	// (simulations, tests), and check-ins keep reporting it; otherwise an
	// agent run by its launcher reports its own build's version, which
	// changes as it updates itself.
	AgentVersionSet bool `json:"agent_version_set,omitempty"`
	CheckinInterval int  `json:"checkin_interval_s"`
}

// EnrollOptions are what `ringfence-agent enroll` is given.
type EnrollOptions struct {
	Server, Token, Data string
	// Root is the initial trusted root.json the agent ships with. Without
	// it the server's first root is fetched and trusted on first use,
	// which a development setup may accept and a fleet should not.
	Root []byte
	// Platform, OSBuild and AgentVersion default to this machine and
	// binary; tests and simulations set them.
	Platform, OSBuild, AgentVersion, Hostname string
	// CA are the PEM certificates to verify the server with (none: the
	// system's roots); enrolment keeps them in the data directory.
	CA   []byte
	HTTP *http.Client
}

// Enroll exchanges an organisation's enrolment token for a device identity
// and writes it, with the trusted root, to the data directory. It refuses
// a directory that already holds an identity.
func Enroll(ctx context.Context, o EnrollOptions) (*Identity, bool, error) {
	if o.Server == "" || o.Token == "" || o.Data == "" {
		return nil, false, errors.New("enroll needs a server URL, an enrolment token and a data directory")
	}
	u, err := url.Parse(strings.TrimRight(o.Server, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, false, fmt.Errorf("server %q: want a URL such as https://ringfence.example.com", o.Server)
	}
	if _, err := os.Stat(filepath.Join(o.Data, IdentityFile)); err == nil {
		return nil, false, fmt.Errorf("%s is already enrolled (%s exists); use a new data directory", o.Data, IdentityFile)
	}
	if o.HTTP == nil {
		if o.HTTP, err = HTTPClient(o.CA, 30*time.Second); err != nil {
			return nil, false, fmt.Errorf("CA: %w", err)
		}
	}
	if o.Platform == "" {
		o.Platform = runtime.GOOS
	}
	if o.OSBuild == "" {
		o.OSBuild = osBuild()
	}
	set := o.AgentVersion != ""
	if !set {
		o.AgentVersion = Version
	}
	if o.Hostname == "" {
		o.Hostname, _ = os.Hostname()
	}
	server := u.String()
	tofu := false
	if o.Root == nil {
		if o.Root, err = get(ctx, o.HTTP, server+"/tuf/metadata/1.root.json"); err != nil {
			return nil, false, fmt.Errorf("initial root: %w", err)
		}
		tofu = true
	}
	if !json.Valid(o.Root) {
		return nil, false, errors.New("the initial root is not JSON")
	}
	body, _ := json.Marshal(protocol.EnrollRequest{Token: o.Token, Platform: o.Platform, OSBuild: o.OSBuild, AgentVersion: o.AgentVersion, Hostname: o.Hostname})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, server+"/v1/enroll", bytes.NewReader(body))
	if err != nil {
		return nil, false, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := o.HTTP.Do(req)
	if err != nil {
		return nil, false, fmt.Errorf("enroll: %w", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
		return nil, false, fmt.Errorf("enroll: %s: %s", resp.Status, strings.TrimSpace(string(b)))
	}
	var er protocol.EnrollResponse
	if err := json.Unmarshal(b, &er); err != nil || er.DeviceID == "" || er.Credential == "" {
		return nil, false, fmt.Errorf("enroll: unexpected answer from the server: %s", b)
	}
	id := &Identity{Server: server, DeviceID: er.DeviceID, Credential: er.Credential, Org: er.Org, Platform: o.Platform,
		OSBuild: o.OSBuild, AgentVersion: o.AgentVersion, AgentVersionSet: set, CheckinInterval: er.CheckinInterval}
	if err := os.MkdirAll(filepath.Join(o.Data, "tuf"), 0o700); err != nil {
		return nil, false, err
	}
	if err := writeFileAtomic(filepath.Join(o.Data, "tuf"), "root.json", o.Root); err != nil {
		return nil, false, err
	}
	if len(o.CA) > 0 {
		if err := writeFileAtomic(o.Data, CAFile, o.CA); err != nil {
			return nil, false, err
		}
	}
	b, _ = json.MarshalIndent(id, "", "  ")
	if err := writeFileAtomic(o.Data, IdentityFile, append(b, '\n')); err != nil {
		return nil, false, err
	}
	// writeFileAtomic keeps the default mode; the credential is a secret.
	return id, tofu, os.Chmod(filepath.Join(o.Data, IdentityFile), 0o600)
}

// LoadIdentity reads the device's identity.
func LoadIdentity(dir string) (*Identity, error) {
	b, err := os.ReadFile(filepath.Join(dir, IdentityFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%s is not enrolled: run ringfence-agent enroll --data %s first", dir, dir)
	}
	if err != nil {
		return nil, err
	}
	var id Identity
	if err := json.Unmarshal(b, &id); err != nil || id.DeviceID == "" || id.Credential == "" || id.Server == "" {
		return nil, fmt.Errorf("%s: not a device identity (%v)", filepath.Join(dir, IdentityFile), err)
	}
	return &id, nil
}

func get(ctx context.Context, c *http.Client, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return io.ReadAll(io.LimitReader(resp.Body, 1<<20))
}

// osBuild names the running kernel or OS build, for the server's strata.
func osBuild() string {
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		if s := strings.TrimSpace(string(b)); s != "" && len(s) <= 64 {
			return s
		}
	}
	return "unknown"
}
