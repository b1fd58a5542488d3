//go:build linux

package agent

import "syscall"

// workerSysProcAttr puts the worker in its own process group, so a Ctrl-C
// in the agent's terminal reaches the agent, which stops the worker in
// order, and not the worker directly; and has the kernel kill the worker
// if the agent dies, so a killed agent leaves no worker running content
// nobody supervises.
//
// Pdeathsig fires when the thread that started the worker exits, not the
// process. Go only ends a thread when a goroutine exits while locked to
// it, and the supervisor never locks one, so in practice the thread lives
// as long as the agent.
func workerSysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
