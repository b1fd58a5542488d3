package rollout

import (
	"math"
	"testing"
)

// The reference values below are computed independently of stats.go: by
// summing the probability mass functions term by term (in log space, with
// math.Lgamma), from closed forms, or from published tables.

// refBinomialSF sums P(X = k) for k >= x, X ~ Binomial(n, p).
func refBinomialSF(x, n int64, p float64) float64 {
	if x <= 0 {
		return 1
	}
	ln, _ := math.Lgamma(float64(n) + 1)
	s := 0.0
	for k := x; k <= n; k++ {
		lk, _ := math.Lgamma(float64(k) + 1)
		lnk, _ := math.Lgamma(float64(n-k) + 1)
		t := math.Exp(ln - lk - lnk + float64(k)*math.Log(p) + float64(n-k)*math.Log1p(-p))
		s += t
		if float64(k) > float64(n)*p && t <= s*1e-18 {
			break
		}
	}
	return s
}

// close reports whether got is within rel of want, relatively (or within
// rel absolutely when want is tiny).
func closeTo(got, want, rel float64) bool {
	return math.Abs(got-want) <= rel*math.Max(math.Abs(want), 1e-300)
}

func TestBinomialSF(t *testing.T) {
	tests := []struct {
		x, n int64
		p    float64
		rel  float64
	}{
		{1, 1, 0.3, 1e-12},
		{1, 10, 0.1, 1e-12},
		{3, 10, 0.1, 1e-11},
		{5, 20, 0.25, 1e-11},
		{10, 20, 0.5, 1e-11},
		{15, 20, 0.5, 1e-11},
		{20, 20, 0.9, 1e-11},
		{50, 100, 0.3, 1e-10},
		{309, 812, 0.1, 1e-8}, // far tail
		{40, 10000, 0.004, 1e-9},
		{60, 10000, 0.004, 1e-9},
		{500, 1000, 0.45, 1e-9},
		// Large fleets: n = 10,000,000 with small shares.
		{1, 10_000_000, 1e-9, 1e-6},
		{10, 10_000_000, 1e-6, 1e-6},
		{100, 10_000_000, 1e-5, 1e-7},
		{130, 10_000_000, 1e-5, 1e-7},
		{1000, 10_000_000, 1e-4, 1e-7},
		{100_000, 10_000_000, 0.01, 1e-6},
		{10_500, 10_000_000, 0.001, 1e-6},
	}
	for _, tc := range tests {
		got, want := binomialSF(tc.x, tc.n, tc.p), refBinomialSF(tc.x, tc.n, tc.p)
		if !closeTo(got, want, tc.rel) {
			t.Errorf("binomialSF(%d, %d, %g) = %.15g, want %.15g", tc.x, tc.n, tc.p, got, want)
		}
	}
	edges := []struct {
		x, n int64
		p    float64
		want float64
	}{
		{0, 10, 0.5, 1},
		{-3, 10, 0.5, 1},
		{11, 10, 0.5, 0},
		{1, 10, 0, 0},
		{1, 10, -0.1, 0},
		{10, 10, 1, 1},
		{10, 10, 0.5, 1.0 / 1024},
		{1, 10, 0.5, 1 - 1.0/1024},
		{5, 10, 0.5, 638.0 / 1024}, // (252+210+120+45+10+1)/1024
		{1, 3, 0.2, 1 - 0.512},
		{2, 3, 0.2, 0.104}, // 3·0.04·0.8 + 0.008
	}
	for _, tc := range edges {
		if got := binomialSF(tc.x, tc.n, tc.p); !closeTo(got, tc.want, 1e-12) {
			t.Errorf("binomialSF(%d, %d, %g) = %.15g, want %.15g", tc.x, tc.n, tc.p, got, tc.want)
		}
	}
	// Monotone in x and p, finite, at n = 10,000,000.
	const n = 10_000_000
	prev := 1.0
	for _, x := range []int64{1, 2, 10, 50, 100, 101, 120, 200, 1000, 1_000_000, n} {
		v := binomialSF(x, n, 1e-5)
		if v > prev || v < 0 || math.IsNaN(v) || math.IsInf(v, 0) {
			t.Errorf("binomialSF(%d, %d, 1e-5) = %g after %g: not monotone in x", x, n, v, prev)
		}
		prev = v
	}
	prev = 0
	for _, p := range []float64{1e-9, 1e-7, 5e-6, 1e-5, 1.1e-5, 2e-5, 1e-3, 0.5} {
		v := binomialSF(100, n, p)
		if v < prev || v > 1 || math.IsNaN(v) {
			t.Errorf("binomialSF(100, %d, %g) = %g after %g: not monotone in p", n, p, v, prev)
		}
		prev = v
	}
}

func TestBetaI(t *testing.T) {
	tests := []struct {
		a, b, x, want float64
	}{
		{1, 1, 0.3, 0.3},
		{1, 5, 0.2, 1 - math.Pow(0.8, 5)},              // I_x(1, b) = 1 - (1-x)^b
		{4, 1, 0.7, math.Pow(0.7, 4)},                  // I_x(a, 1) = x^a
		{0.5, 0.5, 0.25, 2 / math.Pi * math.Asin(0.5)}, // arcsine law
		{0.5, 0.5, 0.9, 2 / math.Pi * math.Asin(math.Sqrt(0.9))},
		{2, 2, 0.5, 0.5},
		{2, 3, 0.4, 0.5248}, // P(Binomial(4, x) >= 2)
		{30, 30, 0.5, 0.5},  // symmetric
		{3, 7, 0, 0},
		{3, 7, -0.5, 0},
		{3, 7, 1, 1},
		{3, 7, 1.5, 1},
	}
	for _, tc := range tests {
		if got := betaI(tc.a, tc.b, tc.x); !closeTo(got, tc.want, 1e-12) && got != tc.want {
			t.Errorf("betaI(%g, %g, %g) = %.15g, want %.15g", tc.a, tc.b, tc.x, got, tc.want)
		}
	}
	// Integer a, b: I_x(a, b) = P(Binomial(a+b-1, x) >= a), on both sides
	// of the continued fraction's switch point.
	small := []float64{1e-6, 1e-4, 0.01, 0.1, 0.3, 0.5, 0.7, 0.99}
	for _, tc := range []struct {
		a, b int64
		xs   []float64
	}{
		{1, 1, small}, {3, 7, small}, {7, 3, small}, {20, 20, small}, {5, 200, small}, {150, 850, small},
		{1000, 9_999_001, []float64{5e-5, 9e-5, 1e-4, 1.1e-4}}, // n = 10,000,000
	} {
		ab := [2]int64{tc.a, tc.b}
		for _, x := range tc.xs {
			want := refBinomialSF(ab[0], ab[0]+ab[1]-1, x)
			if want < 1e-250 || want > 1-1e-9 {
				continue
			}
			if got := betaI(float64(ab[0]), float64(ab[1]), x); !closeTo(got, want, 1e-7) {
				t.Errorf("betaI(%d, %d, %g) = %.15g, want %.15g", ab[0], ab[1], x, got, want)
			}
		}
	}
}

func TestBinomialLower(t *testing.T) {
	tests := []struct {
		x, n  int64
		alpha float64
		want  float64
		rel   float64
	}{
		{0, 10, 0.05, 0, 0},
		{3, 0, 0.05, 0, 0},
		{10, 10, 0.05, math.Pow(0.05, 0.1), 1e-9},             // p^n = alpha
		{1, 10, 0.05, -math.Expm1(math.Log(0.95) / 10), 1e-9}, // 1 - (1-p)^n = alpha
		{1, 10_000_000, 0.001, -math.Expm1(math.Log(0.999) / 1e7), 1e-6},
		{5, 20, 0.025, 0.08657, 1e-3},   // Clopper-Pearson 95% for 5/20: [0.0866, 0.4910]
		{50, 100, 0.025, 0.39832, 1e-3}, // Clopper-Pearson 95% for 50/100: [0.3983, 0.6017]
	}
	for _, tc := range tests {
		got := binomialLower(tc.x, tc.n, tc.alpha)
		if !closeTo(got, tc.want, tc.rel) && got != tc.want {
			t.Errorf("binomialLower(%d, %d, %g) = %.10g, want %.10g", tc.x, tc.n, tc.alpha, got, tc.want)
		}
	}
	// The bound is where the binomial upper tail equals alpha, checked
	// against the direct sum; it grows with x, stays below x/n, and stays
	// finite for a fleet of 10,000,000.
	for _, n := range []int64{20, 812, 10_000, 10_000_000} {
		prev := 0.0
		for _, x := range []int64{1, 2, 5, 19, 20, 309, 812, 5000, 100_000} {
			if x > n {
				continue
			}
			lo := binomialLower(x, n, 0.001)
			if !(lo > prev) || lo >= float64(x)/float64(n) || math.IsNaN(lo) {
				t.Errorf("binomialLower(%d, %d, 0.001) = %g after %g: want increasing, below %g", x, n, lo, prev, float64(x)/float64(n))
			}
			if tail := refBinomialSF(x, n, lo); !closeTo(tail, 0.001, 1e-5) {
				t.Errorf("binomialLower(%d, %d, 0.001) = %g: P(X >= %d) there is %g, want 0.001", x, n, lo, x, tail)
			}
			prev = lo
		}
	}
}

func TestCellLLR(t *testing.T) {
	tests := []struct {
		name    string
		x, y    int64
		t, c, r float64
		sign    int // -1, 0 or 1
	}{
		{"no events", 0, 0, 10, 100, 3, 0},
		{"no treated exposure", 5, 5, 0, 100, 3, 0},
		{"no control exposure", 5, 5, 10, 0, 3, 0},
		{"negative exposure", 5, 5, -1, 100, 3, 0},
		{"ratio 1 is no evidence", 7, 3, 10, 100, 1, 0},
		{"treated events only", 3, 0, 10, 100, 3, 1},
		{"control events only", 0, 30, 10, 100, 3, -1},
		{"as the control predicts", 10, 100, 10, 100, 3, -1},
		{"three times the control", 30, 100, 10, 100, 3, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := cellLLR(cell{x: tc.x, y: tc.y, t: tc.t, c: tc.c}, 1, tc.r)
			switch {
			case tc.sign == 0 && got != 0,
				tc.sign > 0 && !(got > 0),
				tc.sign < 0 && !(got < 0):
				t.Errorf("cellLLR(%d, %d, %g, %g, %g) = %g, want sign %d", tc.x, tc.y, tc.t, tc.c, tc.r, got, tc.sign)
			}
		})
	}
	// By hand: p0 = 1/11, p1 = 3/13.
	want := 4*math.Log((3.0/13)/(1.0/11)) + 20*math.Log((10.0/13)/(10.0/11))
	if got := cellLLR(cell{x: 4, y: 20, t: 10, c: 100}, 1, 3); !closeTo(got, want, 1e-12) {
		t.Errorf("cellLLR(4, 20, 10, 100, 3) = %g, want %g", got, want)
	}
	// Against a null ratio r0, the control's exposure counts r0 times less.
	if a, b := cellLLR(cell{x: 4, y: 20, t: 10, c: 100}, 1.5, 4.5), cellLLR(cell{x: 4, y: 20, t: 15, c: 100}, 1, 3); !closeTo(a, b, 1e-12) {
		t.Errorf("cellLLR against 1.5x: %g, want %g", a, b)
	}
	// Each treated event adds evidence, each control event takes some away.
	if a, b := cellLLR(cell{x: 5, y: 20, t: 10, c: 100}, 1, 3), cellLLR(cell{x: 6, y: 20, t: 10, c: 100}, 1, 3); !(b > a) {
		t.Errorf("one more treated event: %g then %g", a, b)
	}
	if a, b := cellLLR(cell{x: 5, y: 20, t: 10, c: 100}, 1, 3), cellLLR(cell{x: 5, y: 21, t: 10, c: 100}, 1, 3); !(b < a) {
		t.Errorf("one more control event: %g then %g", a, b)
	}
}

// The absolute limits' statistics are e-values: under the null, at its
// boundary (the rate or share exactly at the limit) or below, their
// expectation, summed over the distribution, is at most 1. It is exactly
// 1 in exact arithmetic; in floating point the largest effects' terms sit
// in tails whose probabilities underflow and whose ratios are capped, so
// at the boundary the sum is only checked to be well above 0 (a missing
// normalisation would put it far above 1). The relative test's cell
// statistic has expectation exactly 1 under its binomial null.
func TestEValuesHaveExpectationAtMostOne(t *testing.T) {
	poissonPMF := func(k int64, m float64) float64 {
		lg, _ := math.Lgamma(float64(k) + 1)
		return math.Exp(float64(k)*math.Log(m) - m - lg)
	}
	binomialPMF := func(k, n int64, p float64) float64 {
		ln, _ := math.Lgamma(float64(n) + 1)
		lk, _ := math.Lgamma(float64(k) + 1)
		lnk, _ := math.Lgamma(float64(n-k) + 1)
		return math.Exp(ln - lk - lnk + float64(k)*math.Log(p) + float64(n-k)*math.Log1p(-p))
	}
	for _, tc := range []struct{ limit, t float64 }{{0.05, 20}, {0.02, 500}, {100, 5}, {0.001, 3000}} {
		for _, f := range []float64{1, 0.5} {
			m := tc.limit * f * tc.t
			var e float64
			for k := int64(0); k < int64(1000*m+60*math.Sqrt(1000*m+1)+60); k++ {
				e += poissonPMF(k, m) * poissonE(k, tc.t, tc.limit)
			}
			if f == 1 && e < 0.3 || e > 1+1e-6 {
				t.Errorf("poissonE, limit %v over %v device-hours, true rate %v x limit: expectation %v", tc.limit, tc.t, f, e)
			}
		}
	}
	for _, tc := range []struct {
		limit float64
		n     int64
	}{{0.05, 40}, {0.02, 1000}, {0.1, 200}, {0.3, 50}} {
		for _, f := range []float64{1, 0.5} {
			var e float64
			for k := int64(0); k <= tc.n; k++ {
				e += binomialPMF(k, tc.n, tc.limit*f) * binomialE(k, tc.n, tc.limit)
			}
			if f == 1 && e < 0.3 || e > 1+1e-6 {
				t.Errorf("binomialE, limit %v of %d devices, true share %v x limit: expectation %v", tc.limit, tc.n, f, e)
			}
		}
	}
	// One cell, m events: treated with probability p0 under the null.
	for _, m := range []int64{1, 5, 40} {
		for _, c := range []cell{{t: 10, c: 100}, {t: 1, c: 1}, {t: 500, c: 20}} {
			p0 := c.t / (c.t + c.c)
			for _, f := range effects {
				var e float64
				for x := int64(0); x <= m; x++ {
					cl := c
					cl.x, cl.y = x, m-x
					e += binomialPMF(x, m, p0) * math.Exp(cellLLR(cl, 1, f))
				}
				if math.Abs(e-1) > 1e-9 {
					t.Errorf("cellLLR, %d events, exposures %v/%v, effect %v: expectation %v", m, c.t, c.c, f, e)
				}
			}
		}
	}
}
