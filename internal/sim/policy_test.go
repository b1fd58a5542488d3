package sim

import (
	"context"
	"strings"
	"testing"
)

// A kill switch engaged while a good release rolls out holds for every
// device, the quiet ones the simulator answers in bulk included: none is
// newly exposed while it holds, and the devices already on the release go
// back to their last-known-good before it is released. The quiet devices
// are decided on the server's own answer inputs (server.AnswerInputs);
// views rebuilt from the store by hand, as before, left the devices that
// already ran the release on it.
func TestKillSwitchHoldsForEveryDevice(t *testing.T) {
	engineOnly(t)
	if testing.Short() {
		t.Skip("a simulation")
	}
	t.Parallel()
	src := narrowFleet("kill", "", "kill_switch: {at: 2h, for: 1h}\n")
	sc, err := Parse("kill", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	r := run(t, sc, Options{})
	k := r.KillSwitch
	if k == nil {
		t.Fatal("no kill switch figures")
	}
	if k.ExposedWhileEngaged != 0 || k.RunningAtRelease != 0 {
		t.Errorf("while the kill switch held: %d devices newly exposed, %d still on the release when it was released; want none",
			k.ExposedWhileEngaged, k.RunningAtRelease)
	}
	if r.ExposedDevices == 0 || r.Halted {
		t.Errorf("exposed %d, halted %v (%s): want a release that rolled before and after the kill switch", r.ExposedDevices, r.Halted, r.HaltReason)
	}
}

// Organisations with a maintenance window that stays shut for the whole
// run get nothing new, while the others' devices take the release.
func TestMaintenanceWindowsHoldForEveryDevice(t *testing.T) {
	engineOnly(t)
	if testing.Short() {
		t.Skip("a simulation")
	}
	t.Parallel()
	// The run is 04:00 to 10:00 UTC; the window opens at 23:00.
	src := strings.Replace(narrowFleet("windows", "", ""), "  internal: 0.001\n", "  internal: 0.001\n  windows: {orgs: 0.3, window: \"daily 23:00-23:30\"}\n", 1)
	sc, err := Parse("windows", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(context.Background(), sc, Options{})
	if err != nil {
		t.Fatal(err)
	}
	r, err := s.Run(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var shut, open, shutExposed, openExposed int
	for i := range s.fleet.devs {
		d := &s.fleet.devs[i]
		exposed := d.flags&flagExposed != 0
		if s.fleet.orgs[d.org].window != "" {
			shut++
			if exposed {
				shutExposed++
			}
		} else {
			open++
			if exposed {
				openExposed++
			}
		}
	}
	if shut == 0 || shutExposed != 0 {
		t.Errorf("%d of %d devices behind a shut window exposed, want none of some", shutExposed, shut)
	}
	if openExposed*2 < open {
		t.Errorf("%d of %d devices without a window exposed (%s): want most", openExposed, open, r.Why)
	}
}
