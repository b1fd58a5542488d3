package sim

import (
	"encoding/json"
	"fmt"
	"image/color"
	"os"
	"path/filepath"
	"strings"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// WriteReport writes report.md and chart.png into dir: the run's figures
// and the fleet over time (exposed, crashed now, crashed in all,
// recovered), with the waves and the halt marked, and the incident
// zoomed in a panel of its own.
func WriteReport(dir string, sc *Scenario, r *Result, series []Point, haltedAt int64) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := chart(filepath.Join(dir, "chart.png"), sc, r, series, haltedAt); err != nil {
		return fmt.Errorf("chart: %w", err)
	}
	figs, _ := json.MarshalIndent(r, "", "  ")
	var b strings.Builder
	fmt.Fprintf(&b, "# Simulation: %s\n\n%s\n\n", sc.Name, strings.Join(strings.Fields(sc.Description), " "))
	fmt.Fprintf(&b, "%d devices, seed %d, %s of virtual time in %.1f s of wall time.\n\n", r.Devices, r.Seed, time.Duration(r.VirtualS)*time.Second, r.WallS)
	switch {
	case r.RejectedAtPublish:
		fmt.Fprintf(&b, "**Rejected at publish**: %s. No device was exposed.\n\n", r.Rejection)
	case r.Halted:
		fmt.Fprintf(&b, "**Halted** %s after the first device was exposed: %s\n\n", time.Duration(r.TimeToHaltS)*time.Second, r.HaltReason)
	case r.Completed:
		b.WriteString("**Completed** every wave.\n\n")
	}
	fmt.Fprintf(&b, "| figure | value |\n| --- | --- |\n| exposed devices | %d |\n| crashed devices | %d |\n| crashed at once, at most | %d |\n",
		r.ExposedDevices, r.CrashedDevices, r.PeakCrashed)
	fmt.Fprintf(&b, "| time to halt | %s |\n| time to recover | %s |\n| manual interventions | %d |\n| peak RSS | %d MB |\n| bytes per device | %.0f |\n\n",
		dur(r.TimeToHaltS), dur(r.TimeToRecoverS), r.ManualInterventions, r.PeakRSSBytes>>20, r.BytesPerDevice)
	b.WriteString("![exposed, crashed and recovered devices over time](chart.png)\n\n```json\n")
	b.Write(figs)
	b.WriteString("\n```\n")
	return os.WriteFile(filepath.Join(dir, "report.md"), []byte(b.String()), 0o644)
}

func dur(s float64) string {
	if s < 0 {
		return "-"
	}
	return (time.Duration(s) * time.Second).String()
}

// chart draws the fleet over the whole run and, when something went
// wrong, a second panel zoomed to the incident (first crash to the last
// recovery), where the few crashed devices are not lost at the bottom of
// a scale of exposed ones. Wave starts and the halt are marked on both.
func chart(file string, sc *Scenario, r *Result, series []Point, haltedAt int64) error {
	title := fmt.Sprintf("%s: %s of %s devices exposed, %s crashed", sc.Name, thousands(r.ExposedDevices), thousands(int64(r.Devices)), thousands(r.CrashedDevices))
	whole, err := panel(title, series, r.Timeline, haltedAt, 0, -1, false)
	if err != nil {
		return err
	}
	from, to, ok := incident(series, haltedAt)
	if !ok {
		return whole.Save(8*vg.Inch, 4.5*vg.Inch, file)
	}
	zoom, err := panel(fmt.Sprintf("the incident, minutes %.0f to %.0f: crashed and recovered devices", from/60, to/60), series, r.Timeline, haltedAt, from, to, true)
	if err != nil {
		return err
	}
	img := vgimg.New(8*vg.Inch, 8*vg.Inch)
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: 2, Cols: 1, PadX: vg.Millimeter, PadY: 4 * vg.Millimeter, PadTop: vg.Millimeter, PadBottom: vg.Millimeter, PadLeft: vg.Millimeter, PadRight: vg.Millimeter}
	canvases := plot.Align([][]*plot.Plot{{whole}, {zoom}}, tiles, dc)
	whole.Draw(canvases[0][0])
	zoom.Draw(canvases[1][0])
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// incident is the span from the first crash (or, for a halt without one,
// the halt) to the last recovery, with a margin: the zoomed panel's.
func incident(series []Point, haltedAt int64) (from, to float64, ok bool) {
	first, last := -1.0, -1.0
	var crashed int64
	for _, pt := range series {
		if pt.Crashed > 0 && first < 0 {
			first = pt.T
		}
		if pt.Crashed != crashed || pt.Down > 0 {
			last = pt.T
		}
		crashed = pt.Crashed
	}
	if first < 0 && haltedAt < 0 {
		return 0, 0, false
	}
	if first < 0 {
		first, last = float64(haltedAt), float64(haltedAt)
	}
	if haltedAt >= 0 {
		first, last = min(first, float64(haltedAt)), max(last, float64(haltedAt))
	}
	margin := max((last-first)/5, 120)
	return max(first-margin, 0), last + margin, true
}

// panel is one plot of the series between from and to (to < 0: all),
// the devices crashed and recovered only when small.
func panel(title string, series []Point, timeline []Step, haltedAt int64, from, to float64, small bool) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "virtual minutes"
	p.Y.Label.Text = "devices"
	lines := []struct {
		name string
		get  func(Point) int64
		c    color.RGBA
	}{
		{"exposed", func(pt Point) int64 { return pt.Exposed }, color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 255}},
		{"crashed now", func(pt Point) int64 { return pt.Down }, color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 255}},
		{"crashed in all", func(pt Point) int64 { return pt.Crashed }, color.RGBA{R: 0xff, G: 0x7f, B: 0x0e, A: 255}},
		{"recovered", func(pt Point) int64 { return pt.Recovered }, color.RGBA{R: 0x2c, G: 0xa0, B: 0x2c, A: 255}},
	}
	if small {
		lines = lines[1:]
	}
	var top float64
	for _, l := range lines {
		var pts plotter.XYs
		for _, pt := range series {
			if to >= 0 && (pt.T < from || pt.T > to) {
				continue
			}
			pts = append(pts, plotter.XY{X: pt.T / 60, Y: float64(l.get(pt))})
			top = max(top, float64(l.get(pt)))
		}
		if len(pts) == 0 {
			continue
		}
		ln, err := plotter.NewLine(pts)
		if err != nil {
			return nil, err
		}
		ln.Color = l.c
		ln.Width = vg.Points(1.5)
		p.Add(ln)
		p.Legend.Add(l.name, ln)
	}
	// Head room above the lines for the legend and the marks' labels, so
	// neither covers a line.
	top = max(top, 1) * 1.35
	p.Y.Min, p.Y.Max = 0, top
	if to >= 0 {
		p.X.Min, p.X.Max = from/60, to/60
	}
	mark := func(at float64, label string, c color.Color, dashes []vg.Length) error {
		if to >= 0 && (at < from || at > to) {
			return nil
		}
		ln, err := plotter.NewLine(plotter.XYs{{X: at / 60, Y: 0}, {X: at / 60, Y: top / 1.35}})
		if err != nil {
			return err
		}
		ln.Color, ln.Dashes = c, dashes
		p.Add(ln)
		lb, err := plotter.NewLabels(plotter.XYLabels{XYs: plotter.XYs{{X: at / 60, Y: top / 1.3}}, Labels: []string{label}})
		if err != nil {
			return err
		}
		p.Add(lb)
		return nil
	}
	grey := color.RGBA{R: 0x99, G: 0x99, B: 0x99, A: 255}
	wave := -1
	for _, st := range timeline {
		if st.Wave != wave && (st.State == "rolling" || st.State == "awaiting-approval") {
			wave = st.Wave
			if err := mark(st.T, fmt.Sprintf("wave %d", st.Wave+1), grey, []vg.Length{vg.Points(1), vg.Points(2)}); err != nil {
				return nil, err
			}
		}
	}
	if haltedAt >= 0 {
		if err := mark(float64(haltedAt), "halt", color.Black, []vg.Length{vg.Points(4), vg.Points(3)}); err != nil {
			return nil, err
		}
	}
	p.Legend.Top, p.Legend.Left = true, true
	return p, nil
}

// thousands writes n with thousands separators.
func thousands(n int64) string {
	s := fmt.Sprint(n)
	for i := len(s) - 3; i > 0 && s[i-1] != '-'; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
