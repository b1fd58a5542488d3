//go:build !windows

package agent

import "os"

// bindWorker is Windows' way of tying the worker's life to the agent's
// (a Job object); on Linux workerSysProcAttr's Pdeathsig does it, and
// elsewhere the worker exits on the end of its stdin.
func bindWorker(*os.Process) error { return nil }
