//go:build unix && !linux

package agent

import "syscall"

// workerSysProcAttr puts the worker in its own process group, so a Ctrl-C
// in the agent's terminal reaches the agent, which stops the worker in
// order, and not the worker directly. There is no parent-death signal
// here: a worker whose agent died sees its stdin end and exits.
func workerSysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
