package server

import (
	"fmt"
	"testing"
)

// Devices choose the agent version they report, so the snapshot's memory
// of which releases aim at a platform and agent version stops growing at
// maxAimed entries, and answers the rest without remembering them.
func TestAimedAtIsBounded(t *testing.T) {
	sn := &snapshot{releases: map[string][]*releaseInfo{"acme/ipc": {{}}}}
	for i := range maxAimed + 500 {
		a := sn.aimedAt(nil, "acme/ipc", "windows", fmt.Sprintf("7.%d.0", i))
		if len(a.infos) != 1 {
			t.Fatalf("agent 7.%d.0: %d releases aimed at it, want the one that targets every device", i, len(a.infos))
		}
	}
	n := 0
	sn.aimed.Range(func(any, any) bool { n++; return true })
	if n != maxAimed || sn.nAimed.Load() != maxAimed {
		t.Errorf("%d entries remembered (count %d), want at most %d", n, sn.nAimed.Load(), maxAimed)
	}
}
