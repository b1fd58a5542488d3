package rollout

import "math"

// The statistics the gates need, written against the standard
// definitions: the upper tails of the Poisson and binomial distributions
// through the regularized incomplete gamma and beta functions, and
// confidence bounds by bisection on those tails.

// poissonSF is P(X >= x) for X ~ Poisson(mean).
func poissonSF(x int64, mean float64) float64 {
	if x <= 0 {
		return 1
	}
	if mean <= 0 {
		return 0
	}
	return gammaP(float64(x), mean)
}

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

// poissonLower is the one-sided (1-alpha) lower confidence bound on a
// Poisson mean after observing x events.
func poissonLower(x int64, alpha float64) float64 {
	if x <= 0 {
		return 0
	}
	// P(X >= x | m) grows with m; find m where it equals alpha.
	return bisect(0, float64(x), func(m float64) bool { return poissonSF(x, m) < alpha })
}

// binomialLower is the one-sided (1-alpha) Clopper-Pearson lower bound on
// a proportion after x successes in n trials.
func binomialLower(x, n int64, alpha float64) float64 {
	if x <= 0 || n <= 0 {
		return 0
	}
	return bisect(0, float64(x)/float64(n), func(p float64) bool { return binomialSF(x, n, p) < alpha })
}

// binomialUpper is the one-sided (1-alpha) Clopper-Pearson upper bound on
// a proportion after x successes in n trials.
func binomialUpper(x, n int64, alpha float64) float64 {
	if n <= 0 {
		return 1
	}
	return 1 - binomialLower(n-x, n, alpha)
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

// gammaP is the regularized lower incomplete gamma function P(a, x).
func gammaP(a, x float64) float64 {
	if x <= 0 {
		return 0
	}
	lg, _ := math.Lgamma(a)
	front := math.Exp(a*math.Log(x) - x - lg)
	if x < a+1 {
		// Series. Near x = a its terms shrink like exp(-n²/2a), so it
		// needs some 8·√a of them to converge: cap the loop above that,
		// not at a fixed count, or large counts come out short.
		sum, term := 1/a, 1/a
		for n := 1; n < 10000+int(20*math.Sqrt(a)); n++ {
			term *= x / (a + float64(n))
			sum += term
			if math.Abs(term) < math.Abs(sum)*1e-15 {
				break
			}
		}
		return math.Min(1, sum*front)
	}
	// Continued fraction for Q(a, x) (modified Lentz).
	const tiny = 1e-300
	b := x + 1 - a
	c := 1 / tiny
	d := 1 / b
	h := d
	for i := 1; i < 10000; i++ {
		an := -float64(i) * (float64(i) - a)
		b += 2
		d = an*d + b
		if math.Abs(d) < tiny {
			d = tiny
		}
		c = b + an/c
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
	return math.Max(0, 1-front*h)
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
