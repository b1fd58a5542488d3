package cli

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"

	"github.com/spf13/cobra"

	"github.com/ringfence/ringfence/internal/rollout"
	"github.com/ringfence/ringfence/internal/server"
	"github.com/ringfence/ringfence/internal/store"
)

func newKillSwitchCmd(f *adminFlags) *cobra.Command {
	var channel, reason string
	set := func(verb string, engaged bool, short string) *cobra.Command {
		c := &cobra.Command{
			Use:   verb + " [--channel VENDOR/NAME] --reason R",
			Short: short,
			Args:  cobra.NoArgs,
			RunE: func(cmd *cobra.Command, args []string) error {
				path := "/v1/kill-switch"
				if channel != "" {
					vendor, name, err := splitChannel("--channel", channel)
					if err != nil {
						return err
					}
					path = "/v1/channels/" + url.PathEscape(vendor) + "/" + url.PathEscape(name) + "/kill-switch"
				}
				if err := required("reason", reason, "say why; it goes into the audit log"); err != nil {
					return err
				}
				var k store.KillSwitch
				body := map[string]any{"engaged": engaged, "reason": reason}
				raw, err := f.call(cmd.Context(), http.MethodPut, path, nil, body, &k)
				if err != nil {
					return err
				}
				return f.show(cmd.OutOrStdout(), raw, func(w io.Writer) {
					scope := "on " + k.Scope
					if k.Scope == "*" {
						scope = "on every channel"
					}
					if k.Engaged {
						fmt.Fprintf(w, "kill switch engaged %s: no device gets a version still rolling out, and no release moves on\n", scope)
					} else {
						fmt.Fprintf(w, "kill switch released %s: releases continue where they were\n", scope)
					}
				})
			},
		}
		c.Flags().StringVar(&channel, "channel", "", "only this channel, VENDOR/NAME (default: every channel)")
		c.Flags().StringVar(&reason, "reason", "", "why (recorded in the audit log)")
		return c
	}
	engage := set("engage", true, "Stop every rollout, or one channel's: devices on a version still rolling out go back (operator admin tokens)")
	release := set("release", false, "Release a kill switch: rollouts continue where they were (operator admin tokens)")
	list := &cobra.Command{
		Use:   "list",
		Short: "List kill switches, engaged and released",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var ks []store.KillSwitch
			raw, err := f.call(cmd.Context(), http.MethodGet, "/v1/kill-switches", nil, nil, &ks)
			if err != nil {
				return err
			}
			return f.show(cmd.OutOrStdout(), raw, func(w io.Writer) {
				var rows [][]string
				for _, k := range ks {
					scope := k.Scope
					if scope == "*" {
						scope = "* (every channel)"
					}
					rows = append(rows, []string{scope, yesNo(k.Engaged), ts(k.At), k.Actor, orDash(k.Reason)})
				}
				table(w, []string{"SCOPE", "ENGAGED", "SINCE", "BY", "REASON"}, rows)
			})
		},
	}
	return group("kill-switch", "Engage, release and list kill switches", engage, release, list)
}

func newBudgetCmd(f *adminFlags) *cobra.Command {
	var hourlyCap int
	set := &cobra.Command{
		Use:   "set ORG --hourly-cap-bp N",
		Short: "Cap the share of an organisation's fleet that new versions may reach per hour",
		Long: `Cap, for one organisation, the share of its fleet that new versions of all
vendors together may reach per hour, in basis points (100 = 1%, 10000 = all);
0 removes the cap. Devices beyond the cap are told to wait. The operator's
admin tokens and the organisation's org-admins.`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !cmd.Flags().Changed("hourly-cap-bp") {
				return usage(errors.New("--hourly-cap-bp is required (basis points of the fleet per hour, 0 for no cap)"))
			}
			if hourlyCap < 0 || hourlyCap > rollout.Positions {
				return usage(fmt.Errorf("--hourly-cap-bp %d: want 0 (no cap) to %d basis points", hourlyCap, rollout.Positions))
			}
			var b server.Budget
			raw, err := f.call(cmd.Context(), http.MethodPut, "/v1/orgs/"+url.PathEscape(args[0])+"/budget", nil, server.Budget{Org: args[0], HourlyCap: hourlyCap}, &b)
			if err != nil {
				return err
			}
			return f.show(cmd.OutOrStdout(), raw, func(w io.Writer) {
				if b.HourlyCap == 0 {
					fmt.Fprintf(w, "budget set: %s has no hourly cap\n", b.Org)
					return
				}
				fmt.Fprintf(w, "budget set: new versions may reach %s of %s's fleet per hour (%d basis points)\n", sharePercent(b.HourlyCap), b.Org, b.HourlyCap)
			})
		},
	}
	set.Flags().IntVar(&hourlyCap, "hourly-cap-bp", 0, "basis points of the fleet per hour, 0 (no cap) to 10000")
	show := &cobra.Command{
		Use:   "show ORG",
		Short: "Show an organisation's hourly budget for new versions",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var b server.Budget
			raw, err := f.call(cmd.Context(), http.MethodGet, "/v1/orgs/"+url.PathEscape(args[0])+"/budget", nil, nil, &b)
			if err != nil {
				return err
			}
			return f.show(cmd.OutOrStdout(), raw, func(w io.Writer) {
				if b.HourlyCap == 0 {
					fmt.Fprintf(w, "%s: no hourly cap\n", b.Org)
					return
				}
				fmt.Fprintf(w, "%s: new versions may reach %s of its fleet per hour (%d basis points)\n", b.Org, sharePercent(b.HourlyCap), b.HourlyCap)
			})
		},
	}
	return group("budget", "Show and set organisations' hourly budgets for new versions", set, show)
}
