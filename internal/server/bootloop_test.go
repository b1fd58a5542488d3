package server

import (
	"testing"

	"github.com/ringfence/ringfence/internal/agent"
)

// The boot-loop gate's count and the agent's revert agree on what a boot
// loop is.
func TestBootLoopRebootsAreTheAgentsBootLimit(t *testing.T) {
	if bootLoopReboots != agent.DefaultBootLimit {
		t.Errorf("bootLoopReboots = %d, agent.DefaultBootLimit = %d", bootLoopReboots, agent.DefaultBootLimit)
	}
}
