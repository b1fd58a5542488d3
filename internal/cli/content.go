package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ringfence/ringfence/internal/content"
)

type contentFlags struct {
	types     string
	manifests string
	json      bool
	current   map[string]string
}

func (f *contentFlags) register(c *cobra.Command, manifests bool) {
	c.Flags().StringVar(&f.types, "types", "", "directory of template type files (YAML or JSON)")
	c.Flags().BoolVar(&f.json, "json", false, "print one JSON document for machines")
	if manifests {
		c.Flags().StringVar(&f.manifests, "manifests", "", "directory of agent capability manifests (YAML or JSON)")
		c.Flags().StringToStringVar(&f.current, "current", nil, "a channel's current version, VENDOR/CHANNEL=N; a bundle must be above it (repeatable)")
	}
}

func newContentCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "content",
		Short: "Compile, validate, preflight and evaluate detection content",
		Long: `Detection content is authored as YAML or JSON: template types, agent capability
manifests and bundles (see docs/content-format.md). Exit status: 0 accepted,
1 rejected, 2 usage or I/O error, or interrupted (no verdict).`,
		// Without Args and RunE cobra prints help and exits 0 for an
		// unknown subcommand ("ringfence content nope").
		Args:                  cobra.NoArgs,
		RunE:                  func(cmd *cobra.Command, args []string) error { return cmd.Help() },
		DisableFlagsInUseLine: true,
	}
	c.AddCommand(newCompileCmd(), newValidateCmd(), newPreflightCmd(), newEvalCmd())
	return c
}

// loadCatalog reads the catalog; a problem in a file's text rejects (1),
// one reading the directories is an I/O error (2).
func (f *contentFlags) loadCatalog(needManifests bool) (*content.Catalog, error) {
	if f.types == "" {
		return nil, usage(errors.New("--types DIR is required"))
	}
	if needManifests && f.manifests == "" {
		return nil, usage(errors.New("--manifests DIR is required"))
	}
	cat, err := content.LoadCatalog(f.types, f.manifests)
	if err != nil {
		return nil, classify(err)
	}
	return cat, nil
}

func classify(err error) error {
	var se *content.SourceError
	var ses content.SourceErrors
	var de *content.DecodeError
	if errors.As(err, &se) || errors.As(err, &ses) || errors.As(err, &de) {
		return rejected(err)
	}
	return usage(err)
}

func (f *contentFlags) currentVersion(b *content.Bundle) (uint64, error) {
	return f.currentFor(b.Vendor, b.Channel)
}

// currentFor is the --current version given for a channel, 0 when none.
func (f *contentFlags) currentFor(vendor, channel string) (uint64, error) {
	s, ok := f.current[vendor+"/"+channel]
	if !ok {
		return 0, nil
	}
	n, err := strconv.ParseUint(s, 10, 63)
	if err != nil {
		return 0, usage(fmt.Errorf("--current %s/%s=%s: not a version number", vendor, channel, s))
	}
	return n, nil
}

// bundleReport is one bundle's verdict in human or JSON output.
type bundleReport struct {
	File     string             `json:"file"`
	Bundle   string             `json:"bundle,omitempty"`
	Accepted bool               `json:"accepted"`
	SHA256   string             `json:"sha256,omitempty"`
	Size     int                `json:"size,omitempty"`
	Output   string             `json:"output,omitempty"`
	Findings content.Findings   `json:"findings"`
	Agents   []content.AgentRun `json:"agents,omitempty"`
	Errors   []string           `json:"errors,omitempty"`
	Targeted []string           `json:"targeted_agents,omitempty"`
	encoded  []byte             `json:"-"`
	extra    func(w io.Writer)  `json:"-"`
	_        struct{}           `json:"-"`
}

func (r *bundleReport) print(w io.Writer) {
	verdict := "ACCEPTED"
	if !r.Accepted {
		verdict = "REJECTED"
	}
	name := r.Bundle
	if name == "" {
		name = "unreadable bundle"
	}
	fmt.Fprintf(w, "%s %s (%s)\n", verdict, r.File, name)
	for _, e := range r.Errors {
		fmt.Fprintf(w, "  %s\n", e)
	}
	for _, f := range r.Findings {
		loc := f.Location
		if loc == "" {
			loc = r.File
		}
		fmt.Fprintf(w, "  %s: %s [%s]: %s\n", loc, f.Level, f.Rule, f)
	}
	if r.extra != nil {
		r.extra(w)
	}
}

func writeReports(w io.Writer, asJSON bool, reports []*bundleReport) error {
	ok := true
	for _, r := range reports {
		ok = ok && r.Accepted
		if r.Findings == nil {
			r.Findings = content.Findings{}
		}
	}
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		if err := enc.Encode(map[string]any{"accepted": ok, "bundles": reports}); err != nil {
			return usage(err)
		}
	} else {
		for _, r := range reports {
			r.print(w)
		}
	}
	if !ok {
		return &exitError{code: ExitRejected}
	}
	return nil
}

// sourceReport turns a file that could not be parsed into a rejected
// report, or returns an I/O error.
func sourceReport(path string, err error) (*bundleReport, error) {
	var ses content.SourceErrors
	var se *content.SourceError
	var de *content.DecodeError
	r := &bundleReport{File: path}
	switch {
	case errors.As(err, &ses):
		for _, e := range ses {
			r.Errors = append(r.Errors, e.Error())
		}
	case errors.As(err, &se), errors.As(err, &de):
		r.Errors = append(r.Errors, err.Error())
	default:
		return nil, usage(err)
	}
	return r, nil
}

func (f *contentFlags) validateFile(cat *content.Catalog, path string) (*bundleReport, error) {
	b, err := content.LoadBundle(path)
	if err != nil {
		return sourceReport(path, err)
	}
	cur, err := f.currentVersion(b)
	if err != nil {
		return nil, err
	}
	v := cat.Validate(b, cur)
	r := &bundleReport{File: path, Bundle: b.Name(), Findings: v.Findings, Accepted: v.Accepted()}
	for _, m := range v.Targeted {
		r.Targeted = append(r.Targeted, m.Agent())
	}
	if v.Compiled != nil {
		r.encoded = v.Encoded
		r.SHA256, r.Size = content.Hash(v.Encoded), len(v.Encoded)
	}
	return r, nil
}

func newValidateCmd() *cobra.Command {
	var f contentFlags
	c := &cobra.Command{
		Use:   "validate --types DIR --manifests DIR BUNDLE...",
		Short: "Check bundles against their template type and every targeted agent's manifest",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cat, err := f.loadCatalog(true)
			if err != nil {
				return err
			}
			var reports []*bundleReport
			for _, path := range args {
				r, err := f.validateFile(cat, path)
				if err != nil {
					return err
				}
				reports = append(reports, r)
			}
			return writeReports(cmd.OutOrStdout(), f.json, reports)
		},
	}
	f.register(c, true)
	return c
}

func newCompileCmd() *cobra.Command {
	var f contentFlags
	var out string
	c := &cobra.Command{
		Use:   "compile --types DIR --manifests DIR BUNDLE -o OUT",
		Short: "Validate a bundle and write its canonical compiled form",
		Long: `Validate a bundle and, only if it is accepted, write its canonical compiled form
(what ships to agents) to OUT and print its SHA-256 content hash. The output is
written to a temporary file and renamed, so OUT is never left half-written.`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if out == "" {
				return usage(errors.New("-o OUT is required"))
			}
			cat, err := f.loadCatalog(true)
			if err != nil {
				return err
			}
			r, err := f.validateFile(cat, args[0])
			if err != nil {
				return err
			}
			if r.Accepted {
				if err := writeFileAtomic(out, r.encoded); err != nil {
					return usage(err)
				}
				r.Output = out
				r.extra = func(w io.Writer) {
					fmt.Fprintf(w, "  wrote %s: %d bytes, sha256 %s\n", out, r.Size, r.SHA256)
				}
			}
			return writeReports(cmd.OutOrStdout(), f.json, []*bundleReport{r})
		},
	}
	f.register(c, true)
	c.Flags().StringVarP(&out, "output", "o", "", "where to write the compiled bundle")
	return c
}

// writeFileAtomic writes to a temporary file beside path, syncs it and
// renames it into place.
func writeFileAtomic(path string, b []byte) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	// CreateTemp makes the file 0600; a compiled bundle is an artifact
	// others (signing, publishing) read.
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// loadProgram reads a bundle as source (compiled against its template
// type) or as compiled bytes, recognised by their magic.
func loadProgram(cat *content.Catalog, path string) (*content.Compiled, *bundleReport, error) {
	raw, err := readUpTo(path, content.MaxCompiledSize+1)
	if err != nil {
		return nil, nil, usage(err)
	}
	limit, what := content.MaxSourceSize, "content sources"
	if content.IsCompiled(raw) {
		limit, what = content.MaxCompiledSize, "compiled bundles"
	}
	if len(raw) > limit {
		r := &bundleReport{File: path}
		r.Errors = append(r.Errors, (&content.SourceError{Pos: content.Pos{File: path}, Offset: limit,
			Msg: fmt.Sprintf("file is larger than the %d MiB limit for %s: %v", limit>>20, what, content.ErrTooLarge)}).Error())
		return nil, r, nil
	}
	if content.IsCompiled(raw) {
		c, err := content.Unmarshal(raw)
		if err != nil {
			r, err := sourceReport(path, fmt.Errorf("%s: %w", path, err))
			return nil, r, err
		}
		return c, &bundleReport{File: path, Bundle: c.Name(), SHA256: content.Hash(raw), Size: len(raw)}, nil
	}
	b, err := content.ParseBundle(path, raw)
	if err != nil {
		r, err := sourceReport(path, err)
		return nil, r, err
	}
	r := &bundleReport{File: path, Bundle: b.Name()}
	tt := cat.Types[b.TemplateType]
	if tt == nil {
		r.Errors = append(r.Errors, fmt.Sprintf("%s: unknown template type %s (not in --types)", b.Pos, b.TemplateType))
		return nil, r, nil
	}
	c, fs := content.Compile(b, tt)
	r.Findings = fs
	if c != nil {
		bytes := c.Marshal()
		r.SHA256, r.Size = content.Hash(bytes), len(bytes)
	}
	return c, r, nil
}

// readUpTo reads at most n bytes of a file, so that an oversized file
// costs no more than n bytes to refuse.
func readUpTo(path string, n int) ([]byte, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	b, err := io.ReadAll(io.LimitReader(fh, int64(n)))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return b, nil
}

func newPreflightCmd() *cobra.Command {
	var f contentFlags
	c := &cobra.Command{
		Use:   "preflight --types DIR --manifests DIR BUNDLE...",
		Short: "Check bundles as every targeted agent would load and run them",
		Long: `Check each bundle (source or compiled bytes) as every targeted agent would load
and run it. First the agent's load rules: the version must be above --current,
the fields embedded in a compiled bundle must be the catalog's template type,
every targeted agent must support the type, and every instance must be within
each agent's own limits (criteria per instance, regex program size). Then the
bundle runs through the interpreter for every targeted agent over generated
events: edge values for every field, for every criterion an event that
satisfies it, truncated inputs and hostile values. Reports instance errors,
interpreter defects (panics, disagreement with the reference evaluator), events
over the cost budget (a cost model in units, not a clock: the verdict does not
depend on the machine's load) and allocation per event. Ctrl-C stops it with
exit status 2 and no verdict.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cat, err := f.loadCatalog(true)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			var reports []*bundleReport
			for i, path := range args {
				// The bundle is read, decoded and checked on another
				// goroutine so that Ctrl-C ends the command at once even
				// inside a step that cannot stop part-way (decoding or
				// indexing a large bundle, one costly event); the process
				// exits, so the abandoned work does not outlive it.
				ch := make(chan preflightOutcome, 1)
				go func() { ch <- f.preflightFile(ctx, cat, path) }()
				var o preflightOutcome
				select {
				case o = <-ch:
				case <-ctx.Done():
				}
				if ctx.Err() != nil {
					return usage(fmt.Errorf("preflight interrupted (%v) while checking %s (bundle %d of %d): no verdict",
						context.Cause(ctx), path, i+1, len(args)))
				}
				if o.err != nil {
					return o.err
				}
				reports = append(reports, o.r)
			}
			return writeReports(cmd.OutOrStdout(), f.json, reports)
		},
	}
	f.register(c, true)
	return c
}

type preflightOutcome struct {
	r   *bundleReport
	err error
}

// preflightFile reads one bundle and preflights it.
func (f *contentFlags) preflightFile(ctx context.Context, cat *content.Catalog, path string) preflightOutcome {
	c, r, err := loadProgram(cat, path)
	if err != nil || c == nil {
		return preflightOutcome{r, err}
	}
	cur, err := f.currentFor(c.Vendor, c.Channel)
	if err != nil {
		return preflightOutcome{nil, err}
	}
	rep, err := cat.Preflight(ctx, c, content.PreflightOptions{Current: cur})
	if err != nil {
		return preflightOutcome{nil, usage(fmt.Errorf("preflight %s: %w", path, err))}
	}
	r.Findings = append(r.Findings, rep.Findings...)
	r.Agents = rep.Agents
	r.Targeted = rep.Targeted
	r.Accepted = r.Findings.Errors() == 0 && len(r.Errors) == 0
	r.extra = func(w io.Writer) {
		for _, a := range rep.Agents {
			fmt.Fprintf(w, "  agent %s: %d inputs, %d events, %d matches, %d instance errors, %d reference checks, costliest event %d units, %.0f B/event\n",
				a.Agent, a.Inputs, a.Events, a.Matches, a.InstanceErrors, a.ReferenceChecks, a.MaxEventCost, a.BytesPerEvent)
		}
	}
	return preflightOutcome{r, nil}
}

type evalMatch struct {
	ID       string `json:"id"`
	Action   string `json:"action"`
	Severity string `json:"severity"`
}

type evalError struct {
	ID     string `json:"id"`
	Field  int    `json:"field"`
	Name   string `json:"field_name"`
	Reason string `json:"reason"`
}

type evalResult struct {
	Line    int         `json:"line"`
	Error   string      `json:"error,omitempty"`
	Matches []evalMatch `json:"matches"`
	Errors  []evalError `json:"instance_errors,omitempty"`
}

func newEvalCmd() *cobra.Command {
	var f contentFlags
	c := &cobra.Command{
		Use:   "eval --types DIR BUNDLE EVENTS.jsonl",
		Short: "Evaluate a bundle against events, one JSON event per line",
		Long: `Evaluate a bundle (source or compiled) against a file of events, one per line:
  {"template_type":"ipc@3","inputs":["C:\\x.exe", 42, true, null]}
Exit status 1 when a line is not a valid event or an instance could not be
evaluated on an event.`,
		Args: exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			cat, err := f.loadCatalog(false)
			if err != nil {
				return err
			}
			cp, r, err := loadProgram(cat, args[0])
			if err != nil {
				return err
			}
			if cp == nil {
				return writeReports(cmd.OutOrStdout(), f.json, []*bundleReport{r})
			}
			ev, err := content.NewEvaluator(cp)
			if err != nil {
				return rejected(err)
			}
			fh, err := os.Open(args[1])
			if err != nil {
				return usage(err)
			}
			defer fh.Close()
			return runEval(cmd.OutOrStdout(), f.json, ev, args[1], fh)
		},
	}
	f.register(c, false)
	return c
}

func runEval(w io.Writer, asJSON bool, ev *content.Evaluator, name string, in io.Reader) error {
	cp := ev.Compiled()
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 64<<10), content.MaxEventLine)
	var results []evalResult
	var res content.Result
	summary := map[string]int{"events": 0, "bad_lines": 0, "matched_events": 0, "instance_errors": 0}
	line := 0
	for sc.Scan() {
		line++
		text := bytes.TrimSpace(sc.Bytes())
		if len(text) == 0 || text[0] == '#' {
			continue
		}
		er := evalResult{Line: line, Matches: []evalMatch{}}
		e, err := content.ParseEvent(text)
		if err != nil {
			er.Error = fmt.Sprintf("%s:%d: %v", name, line, err)
			summary["bad_lines"]++
			results = append(results, er)
			continue
		}
		summary["events"]++
		ev.Eval(e, &res)
		for _, i := range res.Matches {
			in := cp.Instances[i]
			er.Matches = append(er.Matches, evalMatch{ID: in.ID, Action: in.Action.String(), Severity: in.Severity.String()})
			summary["action_"+in.Action.String()]++
		}
		for _, ie := range res.Errors {
			er.Errors = append(er.Errors, evalError{ID: cp.Instances[ie.Instance].ID, Field: ie.Field,
				Name: cp.Fields[ie.Field-1].Name, Reason: ie.Reason.String()})
		}
		if len(res.Matches) > 0 {
			summary["matched_events"]++
		}
		summary["instance_errors"] += len(res.Errors)
		results = append(results, er)
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return rejected(fmt.Errorf("%s:%d: line longer than 4 MiB", name, line+1))
		}
		var pe *fs.PathError
		if errors.As(err, &pe) {
			return usage(err)
		}
		return usage(fmt.Errorf("read %s: %w", name, err))
	}
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		if err := enc.Encode(map[string]any{"bundle": cp.Name(), "summary": summary, "results": results}); err != nil {
			return usage(err)
		}
	} else {
		for _, er := range results {
			switch {
			case er.Error != "":
				fmt.Fprintf(w, "line %d: rejected: %s\n", er.Line, er.Error)
			case len(er.Matches) == 0 && len(er.Errors) == 0:
				fmt.Fprintf(w, "line %d: no match\n", er.Line)
			}
			for _, m := range er.Matches {
				fmt.Fprintf(w, "line %d: match %s (action %s, severity %s)\n", er.Line, m.ID, m.Action, m.Severity)
			}
			for _, e := range er.Errors {
				fmt.Fprintf(w, "line %d: instance %s not evaluated: %s on input %d %q\n", er.Line, e.ID, e.Reason, e.Field, e.Name)
			}
		}
		var actions []string
		for _, a := range []string{"block", "alert", "log"} {
			actions = append(actions, fmt.Sprintf("%s %d", a, summary["action_"+a]))
		}
		fmt.Fprintf(w, "%s: %d events, %d matched (%s), %d instance errors, %d bad lines\n",
			cp.Name(), summary["events"], summary["matched_events"], strings.Join(actions, ", "), summary["instance_errors"], summary["bad_lines"])
	}
	if summary["bad_lines"] > 0 || summary["instance_errors"] > 0 {
		return &exitError{code: ExitRejected}
	}
	return nil
}
