package rollout

import "math"

// The statistics the gates need beside their e-values (evidence.go),
// written against the standard definitions: the upper tail of the binomial
// distribution through the regularized incomplete beta function, and a
// confidence bound by bisection on it.

// binomialSF is P(X >= x) for X ~ Binomial(n, p).
func binomialSF(x, n int64, p float64) float64 {
	switch {
	case x <= 0:
		return 1
	case x > n || p <= 0:
		return 0
	case p >= 1:
		return 1
	}
	return betaI(float64(x), float64(n-x+1), p)
}

// binomialLower is the one-sided (1-alpha) Clopper-Pearson lower bound on
// a proportion after x successes in n trials.
func binomialLower(x, n int64, alpha float64) float64 {
	if x <= 0 || n <= 0 {
		return 0
	}
	return bisect(0, float64(x)/float64(n), func(p float64) bool { return binomialSF(x, n, p) < alpha })
}

// bisect finds the boundary in [lo, hi] where below(v) turns false.
func bisect(lo, hi float64, below func(float64) bool) float64 {
	for range 100 {
		mid := (lo + hi) / 2
		if below(mid) {
			lo = mid
		} else {
			hi = mid
		}
		// Relative, not absolute: the Clopper-Pearson bound for one event
		// in 10,000,000 is 1e-10, which a 1e-12 step would miss by 1%.
		if hi-lo <= 1e-12*hi {
			break
		}
	}
	return lo
}

// betaI is the regularized incomplete beta function I_x(a, b).
func betaI(a, b, x float64) float64 {
	if x <= 0 {
		return 0
	}
	if x >= 1 {
		return 1
	}
	la, _ := math.Lgamma(a)
	lb, _ := math.Lgamma(b)
	lab, _ := math.Lgamma(a + b)
	front := math.Exp(lab - la - lb + a*math.Log(x) + b*math.Log1p(-x))
	if x < (a+1)/(a+b+2) {
		return front * betaCF(a, b, x) / a
	}
	return 1 - front*betaCF(b, a, 1-x)/b
}

func betaCF(a, b, x float64) float64 {
	const tiny = 1e-300
	qab, qap, qam := a+b, a+1, a-1
	c, d := 1.0, 1-qab*x/qap
	if math.Abs(d) < tiny {
		d = tiny
	}
	d = 1 / d
	h := d
	for m := 1; m < 10000; m++ {
		fm := float64(m)
		m2 := 2 * fm
		aa := fm * (b - fm) * x / ((qam + m2) * (a + m2))
		d = 1 + aa*d
		if math.Abs(d) < tiny {
			d = tiny
		}
		c = 1 + aa/c
		if math.Abs(c) < tiny {
			c = tiny
		}
		d = 1 / d
		h *= d * c
		aa = -(a + fm) * (qab + fm) * x / ((a + m2) * (qap + m2))
		d = 1 + aa*d
		if math.Abs(d) < tiny {
			d = tiny
		}
		c = 1 + aa/c
		if math.Abs(c) < tiny {
			c = tiny
		}
		d = 1 / d
		del := d * c
		h *= del
		if math.Abs(del-1) < 1e-15 {
			break
		}
	}
	return h
}
