package console

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/ringfence/ringfence/internal/server"
)

// chart is a release's timeline drawn as inline SVG on the server: no
// script, no chart library. The template draws what this holds.
type chart struct {
	Width, Height      int
	Left, Top, Plot, H int // plot area: x from Left, width Plot; y from Top, height H
	Right, Bottom      int
	XLabelY, LegendX   int
	LegendY            []int
	Series             []series
	Marks              []chartMark
	YTicks             []tick
	XTicks             []tick
	Empty              bool
}

type series struct {
	Name, Class string
	Points      string // SVG polyline points
	Last        int64
}

type chartMark struct {
	X           int
	Label       string
	Class       string
	LabelY      int
	LabelAnchor string
}

type tick struct {
	Pos  int
	Text string
}

// crashMetrics are the counters a host or its content worker crashing
// leaves.
var crashMetrics = map[string]bool{"worker-crash": true, "unclean-reboot": true, "boot-loop": true}

// timelineMark is a moment to mark on the chart, such as the halt.
type timelineMark struct {
	At    time.Time
	Label string
	Class string
}

// drawTimeline charts a release's counters per window: devices exposed
// (applied the version), crashed and reverted, cumulative; and silent, an
// estimate from the counters: exposed, not reverted, and no heartbeat in
// the last span (the gates' own silence figure needs the devices' last
// check-ins, which the counters do not keep). A wave's boundary is the
// first window with telemetry of that wave.
func drawTimeline(points []server.TimelinePoint, waves []string, span time.Duration, marks []timelineMark) chart {
	c := chart{Width: 760, Height: 240, Left: 52, Top: 14, Plot: 760 - 52 - 150, H: 240 - 14 - 34}
	c.Right, c.Bottom = c.Left+c.Plot, c.Top+c.H
	c.XLabelY, c.LegendX = c.Bottom+18, c.Right+14
	for i := range 4 {
		c.LegendY = append(c.LegendY, c.Top+16+20*i)
	}
	var windows []time.Time
	perWindow := map[time.Time]map[string]int64{}
	firstOfWave := map[int]time.Time{}
	for _, p := range points {
		m := perWindow[p.Window]
		if m == nil {
			m = map[string]int64{}
			perWindow[p.Window] = m
			windows = append(windows, p.Window)
		}
		metric := p.Metric
		if crashMetrics[metric] {
			metric = "crash"
		}
		m[metric] += p.Value
		if t, ok := firstOfWave[p.Wave]; !ok || p.Window.Before(t) {
			firstOfWave[p.Wave] = p.Window
		}
	}
	if len(windows) == 0 {
		c.Empty = true
		return c
	}
	slices.SortFunc(windows, func(a, b time.Time) int { return a.Compare(b) })
	from, to := windows[0], windows[len(windows)-1]
	for _, m := range marks {
		if !m.At.IsZero() && m.At.After(to) {
			to = m.At
		}
	}
	if !to.After(from) {
		to = from.Add(time.Minute)
	}
	type row struct{ exposed, crashed, reverted, silent int64 }
	rows := make([]row, len(windows))
	var exposed, crashed, reverted int64
	for i, w := range windows {
		m := perWindow[w]
		exposed += m["applied"]
		crashed += m["crash"]
		reverted += m["reverted"]
		var reporting int64
		for j := i; j >= 0 && windows[j].After(w.Add(-span)); j-- {
			reporting += perWindow[windows[j]]["heartbeat"]
		}
		rows[i] = row{exposed, crashed, reverted, max(0, exposed-reverted-reporting)}
	}
	var ymax int64 = 1
	for _, r := range rows {
		ymax = max(ymax, r.exposed, r.crashed, r.reverted, r.silent)
	}
	ymax = niceCeil(ymax)
	x := func(t time.Time) int {
		return c.Left + int(float64(c.Plot)*float64(t.Sub(from))/float64(to.Sub(from)))
	}
	y := func(v int64) int { return c.Top + c.H - int(float64(c.H)*float64(v)/float64(ymax)) }
	defs := []struct {
		name, class string
		v           func(row) int64
	}{
		{"exposed", "exposed", func(r row) int64 { return r.exposed }},
		{"crashed", "crashed", func(r row) int64 { return r.crashed }},
		{"silent (est.)", "silent", func(r row) int64 { return r.silent }},
		{"reverted", "reverted", func(r row) int64 { return r.reverted }},
	}
	for _, d := range defs {
		var b strings.Builder
		for i, w := range windows {
			fmt.Fprintf(&b, "%d,%d ", x(w), y(d.v(rows[i])))
		}
		c.Series = append(c.Series, series{Name: d.name, Class: d.class, Points: strings.TrimSpace(b.String()), Last: d.v(rows[len(rows)-1])})
	}
	for i := 0; i <= 4; i++ {
		v := ymax * int64(i) / 4
		c.YTicks = append(c.YTicks, tick{Pos: y(v), Text: fmt.Sprint(v)})
	}
	for i := 0; i <= 4; i++ {
		t := from.Add(to.Sub(from) * time.Duration(i) / 4)
		c.XTicks = append(c.XTicks, tick{Pos: x(t), Text: t.UTC().Format("15:04")})
	}
	waveIdx := make([]int, 0, len(firstOfWave))
	for w := range firstOfWave {
		waveIdx = append(waveIdx, w)
	}
	slices.Sort(waveIdx)
	for i, w := range waveIdx {
		if i == 0 {
			continue // the chart starts with the first wave
		}
		name := fmt.Sprintf("wave %d", w)
		if w >= 0 && w < len(waves) {
			name = waves[w]
		}
		c.Marks = append(c.Marks, chartMark{X: x(firstOfWave[w]), Label: name, Class: "wave"})
	}
	for _, m := range marks {
		if m.At.IsZero() {
			continue
		}
		at := m.At
		if at.Before(from) {
			at = from
		}
		c.Marks = append(c.Marks, chartMark{X: x(at), Label: m.Label, Class: m.Class})
	}
	for i := range c.Marks {
		c.Marks[i].LabelY = c.Top + 10 + 12*(i%3)
		c.Marks[i].LabelAnchor = "start"
		if c.Marks[i].X > c.Left+c.Plot-60 {
			c.Marks[i].LabelAnchor = "end"
		}
	}
	return c
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten.
func niceCeil(v int64) int64 {
	for p := int64(1); ; p *= 10 {
		for _, m := range []int64{1, 2, 5} {
			if m*p >= v {
				return m * p
			}
		}
	}
}
