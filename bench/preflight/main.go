// Command preflight measures how content preflight scales with bundle
// size: it preflights synthetic bundles (internal/content/synth) of each
// size against two agents (ipc@3 with 20 and with 21 inputs, like the
// examples' 7.11 and 7.12) and prints the seconds per size and per
// instance, and the per-instance time relative to the smallest size, which
// stays near 1 when preflight is linear in bundle size.
//
//	go run ./bench/preflight [-instances 1000,10000,100000] [-json]
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/ringfence/ringfence/internal/content"
	"github.com/ringfence/ringfence/internal/content/synth"
)

type result struct {
	Instances        int     `json:"instances"`
	Seconds          float64 `json:"seconds"`
	MicrosPerInst    float64 `json:"us_per_instance"`
	RatioPerInstance float64 `json:"per_instance_ratio"`
	Events           int     `json:"events"`
	Errors           int     `json:"error_findings"`
	// CostPerInstance is the modelled evaluation cost of all the events,
	// per instance: the interpreter's own work on this bundle, which
	// preflight cannot do in less.
	CostPerInstance float64 `json:"cost_units_per_instance"`
}

func main() {
	sizes := flag.String("instances", "1000,10000,100000", "comma-separated bundle sizes")
	asJSON := flag.Bool("json", false, "print one JSON object per size")
	flag.Parse()
	var out []result
	for _, s := range strings.Split(*sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			fmt.Fprintf(os.Stderr, "preflight: bad size %q\n", s)
			os.Exit(2)
		}
		c := synth.Compiled(n, 1)
		start := time.Now()
		rep := run(c)
		r := result{Instances: n, Seconds: time.Since(start).Seconds(), Errors: rep.Findings.Errors()}
		for _, a := range rep.Agents {
			r.Events += a.Events
			r.CostPerInstance += float64(a.TotalCost) / float64(n)
		}
		r.MicrosPerInst = r.Seconds * 1e6 / float64(n)
		r.RatioPerInstance = r.MicrosPerInst / max(out0(out, r).MicrosPerInst, 1e-9)
		out = append(out, r)
		if *asJSON {
			json.NewEncoder(os.Stdout).Encode(r)
		} else {
			fmt.Printf("%7d instances: %8.2f s  %8.1f µs/instance  ×%.2f per instance vs smallest  %d events  %.0f cost units/instance  %d error findings\n",
				r.Instances, r.Seconds, r.MicrosPerInst, r.RatioPerInstance, r.Events, r.CostPerInstance, r.Errors)
		}
	}
}

func out0(out []result, r result) result {
	if len(out) == 0 {
		return r
	}
	return out[0]
}

// manifests are the two agents of the examples, in code.
func manifests() []*content.Manifest {
	ref := content.TypeRef{Name: "ipc", Version: 3}
	mk := func(minor uint32, inputs int) *content.Manifest {
		return &content.Manifest{AgentVersion: content.AgentVersion{Major: 7, Minor: minor}, Platform: "windows",
			Supplies: map[content.TypeRef]int{ref: inputs}, Limits: content.DefaultLimits}
	}
	return []*content.Manifest{mk(11, 20), mk(12, 21)}
}

func run(c *content.Compiled) *content.PreflightReport {
	tt := synth.TemplateType()
	cat := &content.Catalog{Types: map[content.TypeRef]*content.TemplateType{tt.Ref(): tt}, Manifests: manifests()}
	rep, err := cat.Preflight(context.Background(), c, content.PreflightOptions{})
	if err != nil {
		fmt.Fprintln(os.Stderr, "preflight:", err)
		os.Exit(1)
	}
	return rep
}
