package notify

import "time"

// Policy is how a delivery is retried.
type Policy struct {
	// First is the wait after the first failed attempt; each later wait
	// doubles, up to Max.
	First, Max time.Duration
	// Attempts is how many attempts a delivery gets before it is marked
	// failed.
	Attempts int
}

// DefaultPolicy retries after about 10 s, 20 s, 40 s, ... up to an hour
// between attempts, 12 attempts in all: a receiver that is down for up
// to about five hours still gets the event.
var DefaultPolicy = Policy{First: 10 * time.Second, Max: time.Hour, Attempts: 12}

// Delay is the wait after the attempts-th failed attempt (from 1), with
// jitter: rnd, uniform in [0,1), takes the wait anywhere from half of the
// exponential step to all of it, so that deliveries that failed together
// (a receiver that was down) do not all come back at the same instant.
func (p Policy) Delay(attempts int, rnd float64) time.Duration {
	d := p.First
	for i := 1; i < attempts && d < p.Max; i++ {
		d *= 2
	}
	d = min(d, p.Max)
	return d/2 + time.Duration(rnd*float64(d/2))
}

// Next says what becomes of a delivery after its attempts-th attempt
// failed at now: retried at the returned time, or given up (done) once
// it had its attempts.
func (p Policy) Next(now time.Time, attempts int, rnd float64) (at time.Time, done bool) {
	if attempts >= p.Attempts {
		return now, true
	}
	return now.Add(p.Delay(attempts, rnd)), false
}
