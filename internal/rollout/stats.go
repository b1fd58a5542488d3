package rollout

import (
	"gonum.org/v1/gonum/mathext"
	"gonum.org/v1/gonum/stat/distuv"
)

// The statistics the gates need beside their e-values (evidence.go), from
// gonum: the upper tail of the binomial distribution through the
// regularized incomplete beta function, and the Clopper-Pearson bound as a
// quantile of the beta distribution. stats_test.go checks them against
// values computed independently.

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

// betaI is the regularized incomplete beta function I_x(a, b), 0 below
// x = 0 and 1 above x = 1 (gonum's panics outside [0, 1]).
func betaI(a, b, x float64) float64 {
	switch {
	case x <= 0:
		return 0
	case x >= 1:
		return 1
	}
	return mathext.RegIncBeta(a, b, x)
}

// binomialLower is the one-sided (1-alpha) Clopper-Pearson lower bound on
// a proportion after x successes in n trials: the alpha quantile of
// Beta(x, n-x+1).
func binomialLower(x, n int64, alpha float64) float64 {
	if x <= 0 || n <= 0 {
		return 0
	}
	if x >= n {
		// Beta(n, 1): the quantile has the closed form alpha^(1/n).
		return distuv.Beta{Alpha: float64(n), Beta: 1}.Quantile(alpha)
	}
	return distuv.Beta{Alpha: float64(x), Beta: float64(n - x + 1)}.Quantile(alpha)
}
