package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ringfence/ringfence/internal/rollout"
	"github.com/ringfence/ringfence/internal/server"
)

// serverDeviceLimit is the page size the server uses without ?limit.
const serverDeviceLimit = 1000

func newDevicesCmd(f *adminFlags) *cobra.Command {
	var org, platform, agent, after string
	var limit int
	list := &cobra.Command{
		Use:   "list [--org O] [--platform P] [--agent-version V] [--limit N] [--after ID]",
		Short: "List enrolled devices, a page at a time",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if limit < 0 || limit > 10000 {
				return usage(fmt.Errorf("--limit %d: want 1 to 10000", limit))
			}
			q := url.Values{}
			for k, v := range map[string]string{"org": org, "platform": platform, "agent_version": agent, "after": after} {
				if v != "" {
					q.Set(k, v)
				}
			}
			if limit > 0 {
				q.Set("limit", strconv.Itoa(limit))
			}
			var ds []server.DeviceInfo
			raw, err := f.call(cmd.Context(), http.MethodGet, "/v1/devices", q, nil, &ds)
			if err != nil {
				return err
			}
			page := limit
			if page == 0 {
				page = serverDeviceLimit
			}
			if len(ds) == page {
				fmt.Fprintf(cmd.ErrOrStderr(), "More devices may follow: add --after %s\n", ds[len(ds)-1].ID)
			}
			return f.show(cmd.OutOrStdout(), raw, func(w io.Writer) {
				var rows [][]string
				for _, d := range ds {
					rows = append(rows, []string{d.ID, d.Org, d.Platform, orDash(d.OSBuild), d.AgentVersion, ts(d.LastSeen), yesNo(d.Revoked)})
				}
				table(w, []string{"ID", "ORG", "PLATFORM", "OS BUILD", "AGENT", "LAST SEEN", "REVOKED"}, rows)
			})
		},
	}
	lf := list.Flags()
	lf.StringVar(&org, "org", "", "organisation (default: the token's own; operator tokens see all)")
	lf.StringVar(&platform, "platform", "", "only devices on this platform, e.g. windows")
	lf.StringVar(&agent, "agent-version", "", "only devices running this agent version, e.g. 7.12.0")
	lf.IntVar(&limit, "limit", 0, "page size, 1 to 10000 (default 1000)")
	lf.StringVar(&after, "after", "", "continue after this device id")

	show := &cobra.Command{
		Use:   "show ID",
		Short: "Show a device and what it reports per channel",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var d server.DeviceInfo
			raw, err := f.call(cmd.Context(), http.MethodGet, "/v1/devices/"+url.PathEscape(args[0]), nil, nil, &d)
			if err != nil {
				return err
			}
			return f.show(cmd.OutOrStdout(), raw, func(w io.Writer) {
				fields(w, "device", d.ID, "org", d.Org, "platform", d.Platform, "os build", orDash(d.OSBuild),
					"agent", d.AgentVersion, "enrolled", ts(d.EnrolledAt), "last seen", ts(d.LastSeen), "revoked", yesNo(d.Revoked))
				if len(d.Channels) == 0 {
					fmt.Fprintln(w, "\nno channel reported yet")
					return
				}
				fmt.Fprintln(w)
				var rows [][]string
				for _, c := range d.Channels {
					rows = append(rows, []string{c.Channel, strconv.FormatUint(c.ActiveVersion, 10), strconv.FormatUint(c.LKGVersion, 10), orDash(c.State), ts(c.UpdatedAt)})
				}
				table(w, []string{"CHANNEL", "ACTIVE", "LAST-KNOWN-GOOD", "STATE", "UPDATED"}, rows)
			})
		},
	}
	revoke := &cobra.Command{
		Use:   "revoke ID",
		Short: "Revoke a device's credential; its check-ins fail from now on",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			raw, err := f.call(cmd.Context(), http.MethodPost, "/v1/devices/"+url.PathEscape(args[0])+"/revoke", nil, nil, nil)
			if err != nil {
				return err
			}
			return f.show(cmd.OutOrStdout(), raw, func(w io.Writer) { fmt.Fprintf(w, "revoked device %s\n", args[0]) })
		},
	}
	return group("devices", "List, show and revoke enrolled devices", list, show, revoke)
}

// --- policies ---

func newPoliciesCmd(f *adminFlags) *cobra.Command {
	var track string
	var windows []string
	set := &cobra.Command{
		Use:   `set ORG VENDOR/CHANNEL --track T [--window "mon-fri 01:00-05:00"]...`,
		Short: "Choose an organisation's track and maintenance windows for a channel",
		Long: `Set an organisation's policy for one channel. Tracks: early (takes part in the
waves), ga (after the last gate passed), ga-delay:HOURS, pinned:VERSION, paused.
Maintenance windows are "DAYS HH:MM-HH:MM" in UTC, e.g. "mon-fri 01:00-05:00" or
"sat,sun 00:00-23:59"; repeat --window for several; none means any time.`,
		Args: exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			vendor, name, err := splitChannel("channel", args[1])
			if err != nil {
				return err
			}
			if err := required("track", track, "early, ga, ga-delay:HOURS, pinned:VERSION or paused"); err != nil {
				return err
			}
			if _, err := rollout.ParseTrack(track); err != nil {
				return usage(fmt.Errorf("--track: %v", err))
			}
			c, err := f.client()
			if err != nil {
				return err
			}
			path := "/v1/orgs/" + url.PathEscape(args[0]) + "/policies/" + url.PathEscape(vendor) + "/" + url.PathEscape(name)
			raw, hdr, err := c.do(cmd.Context(), http.MethodPut, path, nil, server.PolicyInfo{Track: track, Windows: append([]string{}, windows...)}, "")
			if err != nil {
				return exit(err)
			}
			var p server.PolicyInfo
			if err := json.Unmarshal(raw, &p); err != nil {
				return usage(fmt.Errorf("PUT %s: unexpected response from the server: %v", path, err))
			}
			if warn := hdr.Get("Warning"); warn != "" {
				fmt.Fprintln(cmd.ErrOrStderr(), "warning:", warningText(warn))
			}
			return f.show(cmd.OutOrStdout(), raw, func(w io.Writer) {
				fmt.Fprintf(w, "policy set: %s on %s tracks %s, windows %s\n", p.Org, p.Channel, p.Track, windowsText(p.Windows))
			})
		},
	}
	set.Flags().StringVar(&track, "track", "", "early, ga, ga-delay:HOURS, pinned:VERSION or paused")
	// StringArray, not StringSlice: "sat,sun 00:00-23:59" holds a comma.
	set.Flags().StringArrayVar(&windows, "window", nil, `maintenance window "DAYS HH:MM-HH:MM" in UTC (repeatable)`)
	list := &cobra.Command{
		Use:   "list ORG",
		Short: "List an organisation's policies",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var ps []server.PolicyInfo
			raw, err := f.call(cmd.Context(), http.MethodGet, "/v1/orgs/"+url.PathEscape(args[0])+"/policies", nil, nil, &ps)
			if err != nil {
				return err
			}
			return f.show(cmd.OutOrStdout(), raw, func(w io.Writer) {
				var rows [][]string
				for _, p := range ps {
					rows = append(rows, []string{p.Channel, p.Track, windowsText(p.Windows)})
				}
				table(w, []string{"CHANNEL", "TRACK", "WINDOWS"}, rows)
			})
		},
	}
	return group("policies", "Set and list organisations' tracks and maintenance windows", set, list)
}

func windowsText(ws []string) string {
	if len(ws) == 0 {
		return "any time"
	}
	return strings.Join(ws, "; ")
}
