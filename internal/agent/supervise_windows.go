//go:build windows

package agent

import "syscall"

// workerSysProcAttr starts the worker in a process group of its own, so a
// Ctrl-C in the agent's console is not delivered to it directly.
//
// Tying the worker's life to the agent's would take a Job object with
// JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE (golang.org/x/sys/windows); until
// then a worker whose agent died sees its stdin end and exits, unless it
// is hung.
func workerSysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{CreationFlags: syscall.CREATE_NEW_PROCESS_GROUP}
}
