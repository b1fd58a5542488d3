//go:build windows

package agentcli

import (
	"context"

	"golang.org/x/sys/windows/svc"
)

// runAsService runs the agent under the Windows service manager when it
// started the process: Stop and Shutdown end the run cleanly, so the next
// start does not count an unclean stop.
func runAsService(run func(context.Context) error) (bool, error) {
	isService, err := svc.IsWindowsService()
	if err != nil || !isService {
		return false, err
	}
	h := &handler{run: run}
	if err := svc.Run("ringfence-agent", h); err != nil {
		return true, err
	}
	return true, h.err
}

type handler struct {
	run func(context.Context) error
	err error
}

func (h *handler) Execute(args []string, req <-chan svc.ChangeRequest, status chan<- svc.Status) (bool, uint32) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- h.run(ctx) }()
	status <- svc.Status{State: svc.Running, Accepts: svc.AcceptStop | svc.AcceptShutdown}
	for {
		select {
		case h.err = <-done:
			status <- svc.Status{State: svc.Stopped}
			return false, exitCode(h.err)
		case c := <-req:
			switch c.Cmd {
			case svc.Interrogate:
				status <- c.CurrentStatus
			case svc.Stop, svc.Shutdown:
				status <- svc.Status{State: svc.StopPending}
				cancel()
			}
		}
	}
}

func exitCode(err error) uint32 {
	if err != nil {
		return 1
	}
	return 0
}
