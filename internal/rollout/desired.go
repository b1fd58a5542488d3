package rollout

import (
	"fmt"
	"time"
)

// ReleaseView is what the desired-version decision needs of a release.
type ReleaseView struct {
	ID          string
	Version     uint64
	State       ReleaseState
	Wave        int // current wave index
	Plan        Plan
	CompletedAt time.Time
	// Strata are the stratified canary bounds: a device of a listed
	// stratum is in a public wave from the first canary wave on when its
	// position is below the bound, even if the wave's share is smaller.
	Strata map[string]int
	// Ramp caps the current wave's reach per stratum while it ramps up
	// (Cohort.Ramp): a device of a listed stratum is in a stratified wave
	// only below the cap (every device an earlier wave reached is).
	Ramp map[string]int
}

// DeviceView is what it needs of a device on one channel.
type DeviceView struct {
	Position int    // cohort position on the channel
	Stratum  string // platform/agent version/OS build
	Internal bool
	Track    Track
	Active   uint64 // version the device runs now (0: none)
	LKG      uint64 // its last-known-good version (0: none)
	// OutsideWindow: the organisation's maintenance windows exclude now.
	// Upgrades wait for the next window; moving off a halted or denied
	// version does not.
	OutsideWindow bool
}

// Decision is the version a device should run on a channel.
type Decision struct {
	Version uint64 // 0: nothing to install
	Release string
	Reason  string
	// Shadow: run Version in shadow, enforcing the last-known-good; the
	// release's current wave is a shadow wave (Wave.Shadow).
	Shadow bool
}

// Desired picks the version a device should run: the newest release it is
// eligible for, newest first. Halted releases and denied versions are never
// desired, so devices on them are sent back to the newest good version
// below. A paused organisation keeps what it has, unless the channel is
// unpausable. It is a pure function of its arguments.
func Desired(now time.Time, releases []ReleaseView, dev DeviceView, unpausable bool, denied func(uint64) bool) Decision {
	d := desired(now, releases, dev, unpausable, denied)
	if dev.Active != 0 && d.Version == dev.Active && bad(releases, dev.Active, denied) {
		// Never leave a device on a halted or denied version, whatever its
		// track: not even a paused or pinned organisation keeps it.
		return leaveBad(now, releases, dev, denied)
	}
	if dev.OutsideWindow && d.Version > dev.Active && dev.Active != 0 && !bad(releases, dev.Active, denied) {
		return Decision{Version: dev.Active, Reason: fmt.Sprintf("%d waits for the organisation's maintenance window", d.Version)}
	}
	return d
}

// leaveBad picks where a device on a halted or denied version goes: the
// newest good completed release, else its last-known-good, else nothing.
func leaveBad(now time.Time, releases []ReleaseView, dev DeviceView, denied func(uint64) bool) Decision {
	ga := dev
	ga.Track = Track{Kind: TrackGA}
	if g := desired(now, releases, ga, true, denied); g.Version != 0 && !bad(releases, g.Version, denied) {
		return Decision{Version: g.Version, Release: g.Release, Reason: fmt.Sprintf("%d is halted: back to %s", dev.Active, g.Reason)}
	}
	if dev.LKG != 0 && dev.LKG != dev.Active && !bad(releases, dev.LKG, denied) {
		return Decision{Version: dev.LKG, Reason: fmt.Sprintf("%d is halted: back to last-known-good %d", dev.Active, dev.LKG)}
	}
	return Decision{Version: 0, Reason: fmt.Sprintf("%d is halted and there is no good version to return to", dev.Active)}
}

// bad reports whether v is halted or denied.
func bad(releases []ReleaseView, v uint64, denied func(uint64) bool) bool {
	if isDenied(denied, v) {
		return true
	}
	for _, r := range releases {
		if r.Version == v && r.State.Bad() {
			return true
		}
	}
	return false
}

func desired(now time.Time, releases []ReleaseView, dev DeviceView, unpausable bool, denied func(uint64) bool) Decision {
	if dev.Track.Kind == TrackPaused && !unpausable {
		return Decision{Version: dev.Active, Reason: "paused by the organisation"}
	}
	if dev.Track.Kind == TrackPinned {
		// A pin chooses a version, not a place in the waves: it takes the
		// version once its rollout completed, so pinning cannot widen a
		// wave's reach.
		for _, r := range releases {
			if r.Version == dev.Track.Version && r.State == StateCompleted && !isDenied(denied, r.Version) {
				return Decision{Version: r.Version, Release: r.ID, Reason: "pinned"}
			}
		}
		return Decision{Version: dev.Active, Reason: fmt.Sprintf("pinned to %d, which has no completed release", dev.Track.Version)}
	}
	best := -1
	var reason string
	for i, r := range releases {
		if best >= 0 && r.Version <= releases[best].Version {
			continue
		}
		if !r.State.Reaches() || isDenied(denied, r.Version) {
			continue
		}
		if ok, why := eligible(now, r, dev); ok {
			best, reason = i, why
		}
	}
	if best < 0 {
		return Decision{Version: dev.Active, Reason: "no release for this device yet"}
	}
	r := releases[best]
	d := Decision{Version: r.Version, Release: r.ID, Reason: reason}
	if r.State != StateCompleted && r.Plan.Waves[r.Wave].Shadow {
		d.Shadow, d.Reason = true, reason+", in shadow"
	}
	return d
}

func isDenied(denied func(uint64) bool, v uint64) bool { return denied != nil && denied(v) }

func eligible(now time.Time, r ReleaseView, dev DeviceView) (bool, string) {
	effective := dev.Track
	if effective.Kind == TrackPaused {
		effective = Track{Kind: TrackGA} // an unpausable channel: paused reads as ga
	}
	if r.State == StateCompleted {
		switch effective.Kind {
		case TrackGADelay:
			if now.Before(r.CompletedAt.Add(effective.Delay)) {
				return false, ""
			}
			return true, "completed release, after the organisation's delay"
		default:
			return true, "completed release"
		}
	}
	// Rolling out, awaiting approval or paused by a person: only the waves
	// reached so far.
	if r.Wave < 0 || r.Wave >= len(r.Plan.Waves) {
		return false, ""
	}
	from := r.Plan.stratifiedFrom()
	for i := 0; i <= r.Wave; i++ {
		w := r.Plan.Waves[i]
		if w.InternalOnly {
			if dev.Internal {
				return true, "wave " + w.Name + " (internal)"
			}
			continue
		}
		if effective.Kind != TrackEarly {
			continue
		}
		bound := w.Share
		if from >= 0 && i >= from {
			// A wave ramping up caps the stratified waves up to it: no
			// earlier wave reached a device at or above the cap.
			if c, ok := r.Ramp[dev.Stratum]; ok && dev.Position >= c {
				return false, ""
			}
			if b, ok := r.Strata[dev.Stratum]; ok && b > bound {
				if dev.Position < b {
					return true, fmt.Sprintf("wave %s (stratified canary: position %d < %d in %s)", w.Name, dev.Position, b, dev.Stratum)
				}
			}
		}
		if dev.Position < bound {
			return true, fmt.Sprintf("wave %s (cohort position %d < %d)", w.Name, dev.Position, bound)
		}
	}
	return false, ""
}
