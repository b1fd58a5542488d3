package cli

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ringfence/ringfence/internal/manifest"
	"github.com/ringfence/ringfence/internal/server"
)

// --- webhooks (docs/webhooks.md) ---

func newWebhooksCmd(f *adminFlags) *cobra.Command {
	var vendor, org, format string
	var events []string
	var disabled bool
	add := &cobra.Command{
		Use:   "add (--vendor V | --org O) URL [--events T,...] [--format cloudevents|slack]",
		Short: "Subscribe a URL to notifications and print its signing secret, once",
		Long: `Subscribe an http:// or https:// URL to notifications: a vendor's (its releases
and channels; publishers), an organisation's (the releases and kill switches of
the channels it follows; org admins), or with neither flag the operator's (every
event, the audit log's included; admin tokens). Event types:
release.halted, release.awaiting-approval, release.completed, release.rolled-back,
kill-switch.engaged, kill-switch.released, audit.verification-failed (operator
only); none given means all. Deliveries are CloudEvents JSON, or {"text": ...}
for a Slack incoming webhook with --format slack, signed with the secret printed
here (docs/webhooks.md says how to verify them).`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if vendor != "" && org != "" {
				return usage(fmt.Errorf("--vendor and --org: a subscription is one or the other"))
			}
			enabled := !disabled
			req := server.WebhookInfo{Vendor: vendor, Org: org, URL: args[0], Events: events, Format: format, Enabled: &enabled}
			var h server.WebhookInfo
			raw, err := f.call(cmd.Context(), http.MethodPost, "/v1/webhooks", nil, req, &h)
			if err != nil {
				return err
			}
			return f.show(cmd.OutOrStdout(), raw, func(w io.Writer) {
				fmt.Fprintf(w, "created webhook %s: %s to %s (%s, events %s)\n", h.ID, webhookScope(h), h.URL, h.Format, webhookEvents(h))
				fmt.Fprintf(w, "secret: %s\n", h.Secret)
				fmt.Fprintln(cmd.ErrOrStderr(), "The secret is shown only now; receivers verify the Ringfence-Signature header with it.")
			})
		},
	}
	add.Flags().StringVar(&vendor, "vendor", "", "the vendor whose events it hears of")
	add.Flags().StringVar(&org, "org", "", "the organisation whose events it hears of")
	add.Flags().StringSliceVar(&events, "events", nil, "event types to deliver, comma separated (default all)")
	add.Flags().StringVar(&format, "format", "cloudevents", "cloudevents or slack")
	add.Flags().BoolVar(&disabled, "disabled", false, "create it disabled")

	var listVendor, listOrg string
	list := &cobra.Command{
		Use:   "list [--vendor V | --org O]",
		Short: "List webhook subscriptions (never their secrets)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			q := url.Values{}
			if listVendor != "" {
				q.Set("vendor", listVendor)
			}
			if listOrg != "" {
				q.Set("org", listOrg)
			}
			var hs []server.WebhookInfo
			raw, err := f.call(cmd.Context(), http.MethodGet, "/v1/webhooks", q, nil, &hs)
			if err != nil {
				return err
			}
			return f.show(cmd.OutOrStdout(), raw, func(w io.Writer) {
				var rows [][]string
				for _, h := range hs {
					rows = append(rows, []string{h.ID, webhookScope(h), h.URL, h.Format, webhookEvents(h), yesNo(h.Enabled != nil && *h.Enabled), ts(h.CreatedAt)})
				}
				table(w, []string{"ID", "SCOPE", "URL", "FORMAT", "EVENTS", "ENABLED", "CREATED"}, rows)
			})
		},
	}
	list.Flags().StringVar(&listVendor, "vendor", "", "only this vendor's")
	list.Flags().StringVar(&listOrg, "org", "", "only this organisation's")

	remove := &cobra.Command{
		Use:   "remove ID",
		Short: "Remove a subscription, with its pending deliveries and its log",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			raw, err := f.call(cmd.Context(), http.MethodDelete, "/v1/webhooks/"+url.PathEscape(args[0]), nil, nil, nil)
			if err != nil {
				return err
			}
			return f.show(cmd.OutOrStdout(), raw, func(w io.Writer) { fmt.Fprintf(w, "removed webhook %s\n", args[0]) })
		},
	}
	enable := func(use string, on bool, short string) *cobra.Command {
		return &cobra.Command{
			Use:   use + " ID",
			Short: short,
			Args:  exactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				raw, err := f.call(cmd.Context(), http.MethodPut, "/v1/webhooks/"+url.PathEscape(args[0])+"/enabled", nil, map[string]bool{"enabled": on}, nil)
				if err != nil {
					return err
				}
				return f.show(cmd.OutOrStdout(), raw, func(w io.Writer) { fmt.Fprintf(w, "webhook %s %sd\n", args[0], use) })
			},
		}
	}

	var limit int
	deliveries := &cobra.Command{
		Use:   "deliveries ID [--limit N]",
		Short: "Show a subscription's delivery log: each event with its attempts",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if limit < 1 || limit > 1000 {
				return usage(fmt.Errorf("--limit %d: want 1 to 1000", limit))
			}
			var ds []server.DeliveryInfo
			raw, err := f.call(cmd.Context(), http.MethodGet, "/v1/webhooks/"+url.PathEscape(args[0])+"/deliveries",
				url.Values{"limit": {strconv.Itoa(limit)}}, nil, &ds)
			if err != nil {
				return err
			}
			return f.show(cmd.OutOrStdout(), raw, func(w io.Writer) {
				var rows [][]string
				for _, d := range ds {
					state := d.State
					if d.NextAttempt != nil {
						state += ", next " + ts(*d.NextAttempt)
					}
					if len(d.Attempts) == 0 {
						rows = append(rows, []string{d.EventID, d.EventType, state, "-", "-", "-", "not tried yet"})
					}
					for i, a := range d.Attempts {
						outcome := a.Error
						if a.Status != 0 && (a.Status < 300 || outcome == "") {
							outcome = "accepted"
						}
						rows = append(rows, []string{d.EventID, d.EventType, state, ts(a.At), orDash(statusText(a.Status)),
							fmt.Sprintf("%dms", a.DurationMS), fmt.Sprintf("#%d %s", i+1, outcome)})
					}
				}
				table(w, []string{"EVENT", "TYPE", "STATE", "ATTEMPT AT", "STATUS", "TOOK", "OUTCOME"}, rows)
			})
		},
	}
	deliveries.Flags().IntVar(&limit, "limit", 100, "at most this many events, newest first")

	return group("webhooks", "Subscribe URLs to notifications of halts, approvals, completions, roll-backs, kill switches",
		add, list, remove, enable("enable", true, "Enable a subscription; deliveries that waited go out"),
		enable("disable", false, "Disable a subscription; it gets no new events"), deliveries)
}

func statusText(code int) string {
	if code == 0 {
		return ""
	}
	return strconv.Itoa(code)
}

// webhookScope is the subscription's owner as apply names it: "vendor
// acme", "org contoso" or "operator".
func webhookScope(h server.WebhookInfo) string {
	return manifest.Object{Vendor: h.Vendor, Org: h.Org}.Owner()
}

func webhookEvents(h server.WebhookInfo) string {
	if len(h.Events) == 0 {
		return "all"
	}
	return strings.Join(h.Events, ",")
}
