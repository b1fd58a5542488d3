package rollout

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Widening is the controller's answer to a wave in progress: it grows the
// reach of strata, as Growth for ComputeCohort. Why says so in words when
// it widens for suspicious evidence (an audit entry); a routine ramp step
// has none.
type Widening struct {
	Growth
	Why string
}

// Widen decides how the current wave grows now. When a gate's evidence
// leans worse on some strata without deciding, those strata's reach
// doubles (at least K more devices, at most all their early devices) so
// the gates see enough of them to fail or pass, while every other stratum
// holds where it is; past the wave's own reach, never beyond its budget:
// what the next wave would reach in addition, so resolving a suspicion
// early exposes no more devices than moving on would. Otherwise (or when
// no suspect stratum can grow), a wave ramping up doubles every stratum's
// reach towards its full reach. At most
// once per every; never in the last wave, internal waves, or a release not
// rolling. It is pure: the server's controller and the simulator call it
// with their own clock.
func Widen(now time.Time, st ReleaseStatus, gates []GateResult, c Cohort, every time.Duration) (Widening, bool) {
	w := st.Wave
	if st.State != StateRolling || st.Frozen || w < 0 || w+1 >= len(st.Plan.Waves) || c.Wave != w ||
		st.Plan.Waves[w].InternalOnly || w < st.Plan.stratifiedFrom() || len(c.Targeted) != len(st.Plan.Waves) {
		return Widening{}, false
	}
	if !c.Widened.IsZero() && now.Sub(c.Widened) < every {
		return Widening{}, false
	}
	// When several gates lean, the strata all of them point at come first
	// (a crash gate naming one OS build and a revert gate leaning across
	// every stratum is a suspicion of that build); then every stratum any
	// of them names.
	var suspects, common []string
	var because []string
	for _, g := range gates {
		if g.Outcome != Inconclusive || len(g.Suspect) == 0 {
			continue
		}
		if because == nil {
			common = slices.Clone(g.Suspect)
		} else {
			common = slices.DeleteFunc(common, func(s string) bool { return !slices.Contains(g.Suspect, s) })
		}
		because = append(because, string(g.Metric))
		for _, s := range g.Suspect {
			if !slices.Contains(suspects, s) {
				suspects = append(suspects, s)
			}
		}
	}
	slices.Sort(suspects)
	slices.Sort(common)
	if len(common) > 0 && len(common) < len(suspects) {
		if out, ok := widenSuspects(st, c, common, because); ok {
			return out, true
		}
	}
	if out, ok := widenSuspects(st, c, suspects, because); ok {
		return out, true
	}
	// No suspicion, or none that more devices of its strata can resolve
	// (they are all reached, or the budget is spent): the ramp goes on.
	if !c.Ramping() {
		return Widening{}, false
	}
	out := Widening{Growth: Growth{Floors: map[string]int{}, Ramp: map[string]int{}}}
	for s, to := range c.RampTo {
		out.Ramp[s] = min(c.Full[s], max(2*to, to+c.K))
	}
	return out, true
}

// widenSuspects doubles the suspect strata's reach within the budget.
func widenSuspects(st ReleaseStatus, c Cohort, suspects, because []string) (Widening, bool) {
	w := st.Wave
	out := Widening{Growth: Growth{Floors: map[string]int{}, Ramp: map[string]int{}}}
	room := c.Targeted[w+1] - c.Targeted[w]
	var parts []string
	for _, s := range suspects {
		cur, size := c.Reach[s], c.Sizes[s]
		want := min(size, max(2*cur, cur+c.K))
		// Within the wave's own reach a suspect only ramps faster; past
		// it, the wave's budget pays.
		if base := max(c.Full[s], cur); want > base {
			extra := min(want-base, room)
			room -= extra
			want = base + extra
			if extra > 0 {
				out.Floors[s] = want
			}
		}
		if want <= cur {
			continue
		}
		out.Ramp[s] = want
		parts = append(parts, fmt.Sprintf("%s from %d to %d devices", s, cur, want))
	}
	if len(parts) == 0 {
		return Widening{}, false
	}
	out.Why = fmt.Sprintf("wave %s widened to resolve %s evidence leaning worse: %s", st.Plan.Waves[w].Name, strings.Join(because, " and "), strings.Join(parts, ", "))
	return out, true
}
