package sim

import "testing"

// engineOnly skips a large engine run under the race detector. The
// engine drives the server's code from one goroutine, so the detector
// finds little there and slows it several times over, which made this
// package most of the suite's time; scripts/test runs these tests in a
// step of their own without it. The server's concurrency stays under the
// detector in the live-mode tests, in TestRunSeedsInParallelAreTheSeedsRuns
// and in the server's own tests.
func engineOnly(t *testing.T) {
	t.Helper()
	if raceEnabled {
		t.Skip("a large engine run: scripts/test runs it without the race detector")
	}
}
