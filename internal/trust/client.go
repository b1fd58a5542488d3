package trust

import (
	"fmt"

	"github.com/theupdateframework/go-tuf/v2/metadata/config"
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
}

// Fetch verifies a target with a fresh go-tuf updater (a new one per
// cycle, as TUF requires) and returns its bytes; any attack the framework
// defends against is an error, with nothing returned.
func Fetch(c ClientConfig, target string) ([]byte, error) {
	cfg, err := config.New(c.MetadataURL, c.Root)
	if err != nil {
		return nil, fmt.Errorf("tuf client: %w", err)
	}
	cfg.RemoteTargetsURL = c.TargetsURL
	cfg.LocalMetadataDir, cfg.LocalTargetsDir = c.MetadataDir, c.TargetsDir
	up, err := updater.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("tuf client: %w", err)
	}
	if err := up.Refresh(); err != nil {
		return nil, fmt.Errorf("tuf refresh: %w", err)
	}
	info, err := up.GetTargetInfo(target)
	if err != nil {
		return nil, fmt.Errorf("tuf target %s: %w", target, err)
	}
	_, data, err := up.DownloadTarget(info, "", "")
	if err != nil {
		return nil, fmt.Errorf("tuf download %s: %w", target, err)
	}
	return data, nil
}
