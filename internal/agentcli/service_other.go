//go:build !windows

package agentcli

import "context"

// runAsService: only Windows has a service manager to talk to; systemd
// and launchd run the agent as a plain process (docs/agent.md).
func runAsService(func(context.Context) error) (bool, error) { return false, nil }
