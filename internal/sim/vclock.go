package sim

import (
	"sync/atomic"
	"time"
)

// vclock is live mode's compressed clock: it starts at the real time (so
// that the signed metadata's expiry, which TUF clients check against their
// own clock, stays meaningful) and runs speed times faster than real time,
// but never faster than the fleet keeps up with. A loaded machine (the
// test suite's other packages, another run) slows every agent's check-in
// in real time; at a fixed speed that reads, in virtual time, as devices
// that went silent, and a good release halted for it. So the governor
// (govern) lowers the speed while requests or timers run late, and raises
// it back towards the target once they keep up: the outcome depends on
// what the fleet does, not on how busy the machine is.
type vclock struct {
	epoch  time.Time
	target float64
	state  atomic.Pointer[clockState]
	// lag is the worst lateness seen since the last govern, in real
	// nanoseconds: a request's duration or a timer's delay.
	lag atomic.Int64
}

// clockState is the virtual time at a real instant and the speed from it.
type clockState struct {
	virtual, real time.Time
	speed         float64
}

func newVClock(now time.Time, speed float64) *vclock {
	c := &vclock{epoch: now.Truncate(time.Second), target: speed}
	c.state.Store(&clockState{virtual: c.epoch, real: now, speed: speed})
	return c
}

func (s *clockState) at(real time.Time) time.Time {
	return s.virtual.Add(time.Duration(float64(real.Sub(s.real)) * s.speed))
}

func (c *vclock) Now() time.Time { return c.state.Load().at(time.Now()) }

func (c *vclock) speed() float64 { return c.state.Load().speed }

// setSpeed changes the speed from now on; virtual time stays continuous.
func (c *vclock) setSpeed(speed float64) {
	real := time.Now()
	c.state.Store(&clockState{virtual: c.state.Load().at(real), real: real, speed: speed})
}

// After fires once virtual d has passed, however the speed changes
// meanwhile: a timer that fires early (the clock slowed) is set again for
// what is left.
func (c *vclock) After(d time.Duration) <-chan time.Time {
	ch := make(chan time.Time, 1)
	due := c.Now().Add(d)
	var arm func()
	arm = func() {
		left := due.Sub(c.Now())
		if left <= 0 {
			ch <- c.Now()
			return
		}
		wait := time.Duration(float64(left) / c.speed())
		set := time.Now()
		time.AfterFunc(wait, func() {
			c.late(time.Since(set) - wait)
			arm()
		})
	}
	arm()
	return ch
}

// late records that something ran d late in real time.
func (c *vclock) late(d time.Duration) {
	for {
		cur := c.lag.Load()
		if int64(d) <= cur || c.lag.CompareAndSwap(cur, int64(d)) {
			return
		}
	}
}

// seconds is virtual seconds since the epoch.
func (c *vclock) seconds() int64 { return int64(c.Now().Sub(c.epoch) / time.Second) }

// Lateness, in virtual time, that the governor tolerates: a check-in that
// takes a few virtual seconds is nothing next to a check-in interval of
// minutes and a silence grace of more.
const (
	lagSlowDown = 5 * time.Second // virtual: above it the clock halves
	lagSpeedUp  = time.Second     // virtual: below it the clock speeds up
)

// govern sets the speed from the worst lateness since the last call.
func (c *vclock) govern() {
	lag := time.Duration(c.lag.Swap(0))
	if next := nextSpeed(c.speed(), c.target, lag); next != c.speed() {
		c.setSpeed(next)
	}
}

// nextSpeed is the governor's rule: real lateness lag at speed is
// lag×speed of virtual time; above lagSlowDown the speed halves (not below
// real time), below lagSpeedUp it grows by a quarter up to target.
func nextSpeed(speed, target float64, lag time.Duration) float64 {
	virtual := time.Duration(float64(lag) * speed)
	switch {
	case virtual > lagSlowDown:
		return max(1, speed/2)
	case virtual < lagSpeedUp:
		return min(target, speed*1.25)
	}
	return speed
}
