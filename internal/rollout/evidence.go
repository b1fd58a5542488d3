package rollout

import (
	"math"
	"sort"
	"strings"
)

// The gates' relative tests are e-values: non-negative statistics whose
// expectation is at most 1 while the release is no worse than its control
// group. A gate fails when its e-value reaches 1/alpha. By Ville's
// inequality the chance that an e-process ever reaches 1/alpha is at most
// alpha, however often the controller looks, so no gate's validity
// depends on the tick (see docs/rollout.md, "Anytime-valid gates").
//
// Every relative test has one shape. A cell is one stratum (of one wave,
// for rates): x treated events over exposure t, y control events over
// exposure c. If the treated rate is ρ times the control's, then, given
// the x+y events, each one is treated with probability p(ρ) = ρt/(ρt+c).
// The likelihood ratio of an alternative ρ1 against the null ρ0 is a
// product over events, a martingale under the null and a supermartingale
// under any ρ below ρ0. For shares (devices silent, failed, reverted) the
// same statistic is used on device counts: conditioned on the total, the
// treated count is hypergeometric, which is smaller than the binomial in
// the convex order (Hoeffding 1963), so the expectation stays at most 1.
//
// No one alternative is right: a narrow defect is a large ratio in one
// stratum, a broad one a small ratio everywhere. The e-value is therefore
// a mixture, which is an e-value too: over effect sizes (effects from half
// the gate's ratio on, equal weights) and over groups of strata (the whole release, each OS build,
// each agent version, each stratum; a quarter of the weight to each level,
// shared equally within it). A defect confined to one OS build pays only
// the log of that group's weight for the strata it does not touch.

// effects are the alternatives the mixture bets on, as multiples of the
// null ratio.
var effects = []float64{1.5, 2, 3, 5, 10, 30, 100, 1000}

// cell is one stratum's figures in a two-group comparison.
type cell struct {
	stratum string
	x, y    int64   // treated and control events (or devices)
	t, c    float64 // treated and control exposure (device-hours or devices)
}

// cellLLR is the log-likelihood ratio of one cell: treated rate r1 times
// the control's against r0 times, conditional on the events seen. A cell
// without exposure on both sides or without events carries no evidence.
func cellLLR(cl cell, r0, r1 float64) float64 {
	if !(cl.t > 0) || !(cl.c > 0) || cl.x+cl.y <= 0 {
		return 0
	}
	p0 := r0 * cl.t / (r0*cl.t + cl.c)
	p1 := r1 * cl.t / (r1*cl.t + cl.c)
	return float64(cl.x)*math.Log(p1/p0) + float64(cl.y)*math.Log((1-p1)/(1-p0))
}

// evidence is a mixture e-value and where it is strongest.
type evidence struct {
	logE float64
	// group names the group of strata that carries the most evidence
	// ("" for the whole release), and ratio the effect it leans to.
	group   string
	members []string // the group's strata
	ratio   float64
}

// e is the e-value, finite.
func (ev evidence) e() float64 { return math.Exp(math.Min(ev.logE, 690)) }

// where says which group of strata the evidence points at, for messages.
func (ev evidence) where() string {
	if ev.group == "" {
		return "across strata"
	}
	return "in " + ev.group
}

// groupsOf returns the groups of strata the mixture spreads its weight
// over, with each group's log weight. Strata are platform/agent/OS build;
// others (tests, older counters) form only the whole and themselves.
func groupsOf(strata []string) (names []string, members [][]string, logW []float64) {
	levels := []map[string][]string{{"": strata}, {}, {}, {}}
	for _, s := range strata {
		if p := strings.Split(s, "/"); len(p) == 3 {
			os := "OS build " + p[2] + " (" + p[0] + ")"
			ag := "agent " + p[1] + " (" + p[0] + ")"
			levels[1][os] = append(levels[1][os], s)
			levels[2][ag] = append(levels[2][ag], s)
		}
		levels[3][s] = append(levels[3][s], s)
	}
	used := 0
	for _, l := range levels {
		if len(l) > 0 {
			used++
		}
	}
	for _, l := range levels {
		keys := make([]string, 0, len(l))
		for k := range l {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			names = append(names, k)
			members = append(members, l[k])
			logW = append(logW, -math.Log(float64(used))-math.Log(float64(len(l))))
		}
	}
	return names, members, logW
}

// mixture is the e-value against "the treated rate is at most r0 times the
// control's in every stratum", betting on treated rates of at least least
// times the control's.
func mixture(cells []cell, r0, least float64) evidence {
	var bets []float64
	for _, f := range effects {
		if r0*f >= least {
			bets = append(bets, f)
		}
	}
	if len(bets) == 0 {
		bets = effects[len(effects)-1:]
	}
	byStratum := map[string][]cell{}
	for _, c := range cells {
		byStratum[c.stratum] = append(byStratum[c.stratum], c)
	}
	strata := make([]string, 0, len(byStratum))
	for s := range byStratum {
		strata = append(strata, s)
	}
	sort.Strings(strata)
	// Per stratum and effect, the log-likelihood ratio of its cells.
	llr := make(map[string][]float64, len(strata))
	for _, s := range strata {
		v := make([]float64, len(bets))
		for k, f := range bets {
			for _, c := range byStratum[s] {
				v[k] += cellLLR(c, r0, r0*f)
			}
		}
		llr[s] = v
	}
	names, members, logW := groupsOf(strata)
	logPi := -math.Log(float64(len(bets)))
	best := evidence{logE: math.Inf(-1)}
	var terms []float64
	bestTerm := math.Inf(-1)
	for g := range names {
		for k, f := range bets {
			term := logW[g] + logPi
			for _, s := range members[g] {
				term += llr[s][k]
			}
			terms = append(terms, term)
			if term > bestTerm {
				bestTerm, best.group, best.members, best.ratio = term, names[g], members[g], r0*f
			}
		}
	}
	best.logE = logSumExp(terms)
	if len(terms) == 0 {
		best.logE = 0
	}
	return best
}

// poissonE is the e-value against "x events over exposure t come at a
// rate of at most limit": a mixture of Poisson likelihood ratios, a
// martingale in the events as they come.
func poissonE(x int64, t, limit float64) float64 {
	if !(t > 0) || !(limit > 0) {
		return 0
	}
	var terms []float64
	for _, f := range effects {
		l1 := limit * f
		terms = append(terms, float64(x)*math.Log(f)-(l1-limit)*t)
	}
	return math.Exp(math.Min(logSumExp(terms)-math.Log(float64(len(effects))), 690))
}

// binomialE is the e-value against "x of n devices means a share of at
// most limit": a mixture of binomial likelihood ratios over shares above
// it, a martingale in the devices as they come.
func binomialE(x, n int64, limit float64) float64 {
	if n <= 0 || !(limit > 0) || limit >= 1 {
		return 0
	}
	x = min(x, n)
	var terms []float64
	for _, f := range effects {
		q := limit * f
		if q >= 1 {
			q = (1 + limit) / 2
		}
		terms = append(terms, float64(x)*math.Log(q/limit)+float64(n-x)*math.Log((1-q)/(1-limit)))
	}
	return math.Exp(math.Min(logSumExp(terms)-math.Log(float64(len(effects))), 690))
}

func logSumExp(xs []float64) float64 {
	m := math.Inf(-1)
	for _, x := range xs {
		m = math.Max(m, x)
	}
	if math.IsInf(m, -1) {
		return m
	}
	var s float64
	for _, x := range xs {
		s += math.Exp(x - m)
	}
	return m + math.Log(s)
}
