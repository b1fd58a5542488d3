package sim

import (
	"testing"
	"time"
)

func TestNextSpeed(t *testing.T) {
	for _, tc := range []struct {
		speed, target float64
		lag           time.Duration // real
		want          float64
	}{
		{40, 40, 0, 40},                      // keeping up at the target
		{40, 40, 100 * time.Millisecond, 40}, // 4 s virtual late: tolerated
		{40, 40, 200 * time.Millisecond, 20}, // 8 s virtual late: halve
		{2, 40, 10 * time.Second, 1},         // never below real time
		{20, 40, 10 * time.Millisecond, 25},  // 0.2 s virtual: a quarter faster
		{36, 40, 0, 40},                      // up to the target, not past it
		{20, 40, 100 * time.Millisecond, 20}, // 2 s virtual: hold
		{1, 40, 3 * time.Second, 1},          // 3 s at real time: hold
	} {
		if got := nextSpeed(tc.speed, tc.target, tc.lag); got != tc.want {
			t.Errorf("nextSpeed(%v, %v, %v) = %v, want %v", tc.speed, tc.target, tc.lag, got, tc.want)
		}
	}
}

// A timer set before the clock slows fires no earlier in virtual time
// than it was set for, and virtual time never jumps when the speed
// changes.
func TestVClockAfterHoldsAcrossSpeedChanges(t *testing.T) {
	c := newVClock(time.Now(), 1000)
	due := c.Now().Add(2 * time.Second)
	ch := c.After(2 * time.Second)
	before := c.Now()
	c.setSpeed(20)
	if after := c.Now(); after.Before(before) || after.Sub(before) > time.Second {
		t.Fatalf("virtual time went from %v to %v across a speed change", before, after)
	}
	got := <-ch
	if got.Before(due) || c.Now().Before(due) {
		t.Fatalf("fired at virtual %v, due %v", got, due)
	}
	c.setSpeed(1000)
	due = c.Now().Add(time.Second)
	if got := <-c.After(time.Second); got.Before(due) {
		t.Fatalf("fired at virtual %v, due %v", got, due)
	}
}
