package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ringfence/ringfence/internal/rollout"
	"github.com/ringfence/ringfence/internal/server"
	"github.com/ringfence/ringfence/internal/store"
)

// releaseJSON is the server's release report.
type releaseJSON server.ReleaseReport

func (r *releaseJSON) wave() string {
	if r.State == string(store.ReleaseCompleted) {
		return "done"
	}
	if r.WaveName == "" {
		return strconv.Itoa(r.Wave)
	}
	return fmt.Sprintf("%d %s", r.Wave, r.WaveName)
}

// summary is the one line a change prints: state, wave, and the phase of a
// rolling release.
func (r *releaseJSON) summary() string {
	s := fmt.Sprintf("%s, wave %s of %d", r.State, r.wave(), len(r.Plan.Waves))
	if r.Phase != "" {
		s += " (" + r.Phase + ")"
	}
	return s
}

// approvals is "1 of 2": sign-offs given and needed to leave the canary
// waves in the release's lane.
func (r *releaseJSON) approvals() string {
	lane, err := rollout.ParseLane(r.Lane)
	if err != nil {
		return strconv.Itoa(len(r.Approvals))
	}
	return fmt.Sprintf("%d of %d", len(r.Approvals), lane.Approvals())
}

// sharePercent prints a share in basis points as a percentage: 10 is 0.1%.
func sharePercent(bp int) string {
	return strconv.FormatFloat(float64(bp)/100, 'f', -1, 64) + "%"
}

// maxPlanFile caps a --plan file; the server takes 64 KiB request bodies.
const maxPlanFile = 64 << 10

func releasePath(id string, verb ...string) string {
	p := "/v1/releases/" + url.PathEscape(id)
	for _, v := range verb {
		p += "/" + v
	}
	return p
}

func newReleaseCmd(f *adminFlags) *cobra.Command {
	var planFile, planTemplate, lane string
	var draft, quiet, shadowCanary bool
	create := &cobra.Command{
		Use:   "create VENDOR/NAME VERSION [--plan FILE.json|--plan-template NAME] [--shadow-canary] [--lane normal|emergency] [--draft] [-q]",
		Short: "Start rolling a published version out, in waves",
		Long: `Start a release of a published version on a channel. Without --plan the channel
kind's default plan applies (content: internal, canary 0.1%, early 1%, 10%,
broad). A plan file is JSON: {"waves": [{"name": "canary", "share": 10,
"canary": true, "min_devices": 20, "bake": "1h"}, ...]}, shares in basis points
(10000 = all), cumulative, the last wave reaching every device.

--plan-template NAME takes one of the vendor's named plans (ringfence get plans;
set them with ringfence apply, kind Plan); the release keeps a copy.

--shadow-canary runs the canary waves in shadow: their devices evaluate the new
content and report what it would have done, but keep enforcing what they ran;
the action-rate gate judges those figures, and the first wave after the
canaries enforces. For content with new or wider block rules. (In a plan file:
"shadow": true on the first waves.)

--lane emergency is for urgent threat content: every wave and gate is kept,
bake times and deadlines are a quarter, and leaving the canary waves needs two
approvers. --draft creates the release without starting it; start it with
'ringfence release promote ID --reason R'.`,
		Args: exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if _, _, err := splitChannel("channel", args[0]); err != nil {
				return err
			}
			version, err := strconv.ParseUint(args[1], 10, 63)
			if err != nil || version == 0 {
				return usage(fmt.Errorf("version %q: want a version number from 1", args[1]))
			}
			if _, err := rollout.ParseLane(lane); err != nil {
				return usage(fmt.Errorf("--lane: %v", err))
			}
			req := struct {
				Channel string          `json:"channel"`
				Version uint64          `json:"version"`
				Plan    json.RawMessage `json:"plan,omitempty"`
				Lane    string          `json:"lane,omitempty"`
				Draft   bool            `json:"draft,omitempty"`
				Shadow  bool            `json:"shadow_canary,omitempty"`
				Named   string          `json:"plan_template,omitempty"`
			}{Channel: args[0], Version: version, Lane: lane, Draft: draft, Shadow: shadowCanary, Named: planTemplate}
			if planFile != "" && planTemplate != "" {
				return usage(errors.New("--plan and --plan-template: give a plan or name one, not both"))
			}
			if planFile != "" {
				plan, err := readUpTo(planFile, maxPlanFile+1)
				if err != nil {
					return usage(err)
				}
				if len(plan) > maxPlanFile {
					return rejected(fmt.Errorf("%s: plan is larger than %d KiB", planFile, maxPlanFile>>10))
				}
				if _, err := rollout.ParsePlan(plan); err != nil {
					return rejected(fmt.Errorf("%s: %v", planFile, err))
				}
				req.Plan = plan
			}
			var rel releaseJSON
			raw, err := f.call(cmd.Context(), http.MethodPost, "/v1/releases", nil, req, &rel)
			if err != nil {
				return err
			}
			if quiet && !f.json {
				// For scripts: RID=$(ringfence release create -q ...).
				fmt.Fprintln(cmd.OutOrStdout(), rel.ID)
				return nil
			}
			return f.show(cmd.OutOrStdout(), raw, func(w io.Writer) {
				fmt.Fprintf(w, "created release %s: %s@%d, %s, %s lane\n", rel.ID, rel.Channel, rel.Version, rel.summary(), rel.Lane)
				if rel.State == string(store.ReleaseDraft) {
					fmt.Fprintf(cmd.ErrOrStderr(), "A draft reaches no device; start it with: ringfence release promote %s --reason R\n", rel.ID)
				}
			})
		},
	}
	create.Flags().StringVar(&planFile, "plan", "", "rollout plan as a JSON file (default: the channel kind's default plan)")
	create.Flags().StringVar(&lane, "lane", "normal", "normal, or emergency: quarter bake times, two approvers")
	create.Flags().StringVar(&planTemplate, "plan-template", "", "one of the vendor's named plans (ringfence get plans)")
	create.Flags().BoolVar(&shadowCanary, "shadow-canary", false, "run the canary waves in shadow: evaluated and reported, not enforced")
	create.Flags().BoolVar(&draft, "draft", false, "create the release without starting it (start it with release promote)")
	create.Flags().BoolVarP(&quiet, "quiet", "q", false, "print only the new release's id")

	var listChannel string
	list := &cobra.Command{
		Use:   "list [--channel VENDOR/NAME]",
		Short: "List releases the token may see",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			q := url.Values{}
			if listChannel != "" {
				q.Set("channel", listChannel)
			}
			var rs []releaseJSON
			raw, err := f.call(cmd.Context(), http.MethodGet, "/v1/releases", q, nil, &rs)
			if err != nil {
				return err
			}
			return f.show(cmd.OutOrStdout(), raw, func(w io.Writer) {
				var rows [][]string
				for _, r := range rs {
					rows = append(rows, []string{r.ID, r.Channel, strconv.FormatUint(r.Version, 10), r.State, r.wave(), r.Lane, ts(r.UpdatedAt), orDash(r.Reason)})
				}
				table(w, []string{"ID", "CHANNEL", "VERSION", "STATE", "WAVE", "LANE", "UPDATED", "REASON"}, rows)
			})
		},
	}
	list.Flags().StringVar(&listChannel, "channel", "", "only releases on this channel")

	show := &cobra.Command{
		Use:   "show ID",
		Short: "Show a release: its plan, where it is, and the health figures the token may see",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var r releaseJSON
			raw, err := f.call(cmd.Context(), http.MethodGet, releasePath(args[0]), nil, nil, &r)
			if err != nil {
				return err
			}
			return f.show(cmd.OutOrStdout(), raw, func(w io.Writer) { printRelease(w, &r) })
		},
	}

	status := &cobra.Command{
		Use:   "status ID",
		Short: "Say why a release is where it is: per wave devices targeted, applied and confirmed, and every gate",
		Long: `Show a release as the rollout controller judges it now: one line saying why it
is where it is, its state, wave, phase, lane, approvals and kill switch; per
wave the devices targeted, applied and confirmed healthy; and each gate of the
current wave with its outcome (pass, fail, inconclusive, no-data, error) and
figures: shares of devices for silence, apply-failure and revert, rates per
device-hour for the others. For the vendor's tokens and the operator's.`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var st server.ReleaseStatus
			raw, err := f.call(cmd.Context(), http.MethodGet, releasePath(args[0], "status"), nil, nil, &st)
			if err != nil {
				return err
			}
			return f.show(cmd.OutOrStdout(), raw, func(w io.Writer) { printReleaseStatus(w, &st) })
		},
	}

	var reason string
	change := func(verb, short, long string) *cobra.Command {
		c := &cobra.Command{
			Use:   verb + " ID --reason R",
			Short: short,
			Long:  short + ".\n\n" + long,
			Args:  exactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				if err := required("reason", reason, "say why; it goes into the audit log"); err != nil {
					return err
				}
				var r releaseJSON
				raw, err := f.call(cmd.Context(), http.MethodPost, releasePath(args[0], verb), nil, map[string]string{"reason": reason}, &r)
				if err != nil {
					return err
				}
				return f.show(cmd.OutOrStdout(), raw, func(w io.Writer) {
					if verb == "approve" {
						fmt.Fprintf(w, "approved release %s (%s@%d): %s approvals; %s\n", r.ID, r.Channel, r.Version, r.approvals(), r.summary())
						return
					}
					fmt.Fprintf(w, "release %s (%s@%d): %s\n", r.ID, r.Channel, r.Version, r.summary())
				})
			},
		}
		c.Flags().StringVar(&reason, "reason", "", "why (recorded in the audit log)")
		return c
	}
	approve := change("approve", "Sign a release off to leave the canary waves",
		`Approvers of the release's vendor only, and not the person who created it. The
normal lane needs one approval, the emergency lane two, by different people.
An approval may be given before the canary waves pass; the controller moves
on once the gates pass too.`)
	pause := change("pause", "Pause a rolling release: no device beyond the waves reached so far gets it",
		`Publishers of the release's vendor. A failing gate still halts a paused release.`)
	resume := change("resume", "Resume a paused, halted or rolled-back release",
		`Publishers of the release's vendor. After a halt the wave starts over and the
gates judge only telemetry from now on.`)
	halt := change("halt", "Halt a release: its devices go back to their last-known-good version",
		`Publishers and approvers of the release's vendor, and the operator. Any release
not already halted or rolled back may be halted, a completed one too.`)
	promote := change("promote", "Start a draft, or move a release to its next wave by hand",
		`Publishers of the release's vendor. Promoting skips what is left of the wave's
bake time and the wait for undecided gates, never a failing gate or a missing
approval. After the last wave the release completes.`)
	watch := newReleaseWatchCmd(f)
	for _, sub := range []*cobra.Command{show, status, watch, approve, pause, resume, halt, promote} {
		sub.ValidArgsFunction = f.completeReleases
	}
	create.ValidArgsFunction = func(cmd *cobra.Command, args []string, prefix string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if len(args) > 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		return f.completeChannels(cmd, prefix)
	}
	_ = list.RegisterFlagCompletionFunc("channel", func(cmd *cobra.Command, args []string, prefix string) ([]cobra.Completion, cobra.ShellCompDirective) {
		return f.completeChannels(cmd, prefix)
	})
	c := group("release", "Create, list, show and follow releases; approve, pause, resume, halt and promote them",
		create, list, show, status, watch, approve, pause, resume, halt, promote)
	c.Aliases = []string{"releases"}
	return c
}

func printRelease(w io.Writer, r *releaseJSON) {
	created := ts(r.CreatedAt)
	if r.CreatedBy != "" {
		created += " by " + r.CreatedBy
	}
	wave := fmt.Sprintf("%s of %d", r.wave(), len(r.Plan.Waves))
	if r.State == string(store.ReleaseCompleted) {
		wave = fmt.Sprintf("all %d passed", len(r.Plan.Waves))
	} else if r.Phase != "" {
		wave += " (" + r.Phase + ")"
	}
	fields(w, "release", r.ID, "channel", r.Channel, "version", strconv.FormatUint(r.Version, 10), "state", r.State,
		"wave", wave, "lane", r.Lane, "reason", orDash(r.Reason), "created", created, "updated", ts(r.UpdatedAt))
	fmt.Fprintln(w)
	var rows [][]string
	for i, wv := range r.Plan.Waves {
		mark := ""
		if i == r.Wave && r.State != string(store.ReleaseCompleted) {
			mark = "<- " + r.State
		}
		share := sharePercent(wv.Share)
		if wv.InternalOnly {
			share = "internal orgs"
		}
		rows = append(rows, []string{strconv.Itoa(i), wv.Name, share, strconv.Itoa(wv.MinDevices), duration(time.Duration(wv.Bake)), mark})
	}
	table(w, []string{"WAVE", "NAME", "SHARE", "MIN DEVICES", "BAKE", ""}, rows)
	fmt.Fprintln(w)
	if len(r.Figures) == 0 {
		fmt.Fprintln(w, "no figures yet: no device on or beside this release has reported")
		return
	}
	rows = rows[:0]
	for _, fg := range r.Figures {
		rows = append(rows, []string{strconv.Itoa(fg.Wave), orDash(fg.Org), orDash(fg.Stratum), fg.Metric, strconv.FormatInt(fg.Value, 10)})
	}
	table(w, []string{"WAVE", "ORG", "STRATUM", "METRIC", "VALUE"}, rows)
}

func printReleaseStatus(w io.Writer, st *server.ReleaseStatus) {
	r := (*releaseJSON)(&st.Release)
	fmt.Fprintln(w, st.Summary)
	fmt.Fprintln(w)
	approvals := fmt.Sprintf("%d of %d", st.ApprovalsGiven, st.ApprovalsNeeded)
	if len(r.Approvals) > 0 {
		var by []string
		for _, a := range r.Approvals {
			by = append(by, a.Actor)
		}
		approvals += " (" + strings.Join(by, ", ") + ")"
	}
	kill := "not engaged"
	if st.Frozen {
		kill = "engaged (the release waits; a failing gate still halts it)"
	}
	kv := []string{"release", r.ID, "channel", fmt.Sprintf("%s@%d", r.Channel, r.Version), "state", r.State,
		"wave", fmt.Sprintf("%s of %d", r.wave(), len(r.Plan.Waves)), "phase", orDash(r.Phase), "lane", r.Lane, "approvals", approvals}
	switch st.Signing {
	case "production":
		kv = append(kv, "signatures", "production: every device can verify it")
	case "canary", "unsigned":
		kv = append(kv, "signatures", st.Signing+": "+st.SigningNote)
	}
	fields(w, append(kv, "kill switch", kill)...)
	fmt.Fprintln(w)
	var rows [][]string
	for i, wv := range st.Waves {
		share := sharePercent(wv.Share)
		if wv.Internal {
			share = "internal orgs"
		}
		targeted := "-"
		if wv.Targeted >= 0 {
			targeted = strconv.Itoa(wv.Targeted)
		}
		name := wv.Name
		if wv.Shadow {
			name += " (shadow)"
		}
		rows = append(rows, []string{strconv.Itoa(i), name, share, wv.Progress, targeted,
			strconv.FormatInt(wv.Applied, 10), strconv.FormatInt(wv.Confirmed, 10)})
	}
	table(w, []string{"WAVE", "NAME", "SHARE", "PROGRESS", "TARGETED", "APPLIED", "CONFIRMED"}, rows)
	fmt.Fprintln(w)
	if len(st.Gates) == 0 {
		fmt.Fprintln(w, "no gates judged")
		return
	}
	rows = rows[:0]
	for _, g := range st.Gates {
		treated, control, exposure := g.Figures()
		rows = append(rows, []string{string(g.Metric), string(g.Outcome), treated, control, exposure, g.Message})
	}
	table(w, []string{"GATE", "OUTCOME", "TREATED", "CONTROL", "EXPOSURE", "MESSAGE"}, rows)
}

// --- kill switches and budgets ---
