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
)

// WriteReport writes report.md and chart.png into dir: the run's figures
// and the fleet over time (exposed, crashed now, crashed in all,
// recovered), the halt marked.
func WriteReport(dir string, sc *Scenario, r *Result, series []Point, haltedAt int64) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := chart(filepath.Join(dir, "chart.png"), sc.Name, series, haltedAt); err != nil {
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

func chart(file, title string, series []Point, haltedAt int64) error {
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
	var top float64
	for _, l := range lines {
		pts := make(plotter.XYs, len(series))
		for i, pt := range series {
			pts[i].X, pts[i].Y = pt.T/60, float64(l.get(pt))
			top = max(top, pts[i].Y)
		}
		ln, err := plotter.NewLine(pts)
		if err != nil {
			return err
		}
		ln.Color = l.c
		ln.Width = vg.Points(1.5)
		p.Add(ln)
		p.Legend.Add(l.name, ln)
	}
	if haltedAt >= 0 {
		halt, err := plotter.NewLine(plotter.XYs{{X: float64(haltedAt) / 60, Y: 0}, {X: float64(haltedAt) / 60, Y: max(top, 1)}})
		if err != nil {
			return err
		}
		halt.Color = color.Black
		halt.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
		p.Add(halt)
		p.Legend.Add("halt", halt)
	}
	p.Legend.Top = true
	return p.Save(8*vg.Inch, 4.5*vg.Inch, file)
}
