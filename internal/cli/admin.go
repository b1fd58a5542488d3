package cli

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/ringfence/ringfence/internal/content"
	"github.com/ringfence/ringfence/internal/rollout"
	"github.com/ringfence/ringfence/internal/server"
	"github.com/ringfence/ringfence/internal/store"
	"github.com/ringfence/ringfence/internal/trust"
)

// The admin commands drive the server's admin API (internal/server/admin.go).
// Exit status: 0 done; 1 the server read the request and refused it (bad
// request, forbidden, not found, conflict, rejected bundle) or audit
// verification failed; 2 usage, an unreachable or failing server, or a
// missing, unknown or revoked token.

// newAdminCmds registers the admin flags (--server, --token, --json) as
// root's persistent flags and returns the admin commands.
func newAdminCmds(root *cobra.Command) []*cobra.Command {
	f := &adminFlags{}
	f.register(root)
	return []*cobra.Command{
		newWhoamiCmd(f), newTenantsCmd(f), newChannelsCmd(f), newTokensCmd(f), newEnrollTokensCmd(f),
		newDevicesCmd(f), newPoliciesCmd(f), newPublishCmd(f), newSignCmd(f), newReleaseCmd(f), newKillSwitchCmd(f), newBudgetCmd(f), newAuditCmd(f),
		newWebhooksCmd(f),
	}
}

// group is a command that only holds subcommands; an unknown subcommand is
// a usage error, not help and exit 0.
func group(use, short string, subs ...*cobra.Command) *cobra.Command {
	c := &cobra.Command{
		Use:                   use,
		Short:                 short,
		Args:                  cobra.NoArgs,
		RunE:                  func(cmd *cobra.Command, args []string) error { return cmd.Help() },
		DisableFlagsInUseLine: true,
	}
	c.AddCommand(subs...)
	return c
}

// call is one admin request: the client is built (and the token demanded)
// only after the arguments were checked.
func (f *adminFlags) call(ctx context.Context, method, path string, query url.Values, body, out any) ([]byte, error) {
	c, err := f.client()
	if err != nil {
		return nil, err
	}
	raw, err := c.call(ctx, method, path, query, body, out)
	return raw, exit(err)
}

// show prints raw with --json, else runs the human printer.
func (f *adminFlags) show(w io.Writer, raw []byte, human func(w io.Writer)) error {
	if f.json {
		return writeRawJSON(w, raw)
	}
	human(w)
	return nil
}

// table prints rows aligned in columns under a header.
func table(w io.Writer, header []string, rows [][]string) {
	var buf bytes.Buffer
	tw := tabwriter.NewWriter(&buf, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	tw.Flush()
	// tabwriter pads every cell but the last, even before an empty one.
	for _, line := range strings.SplitAfter(buf.String(), "\n") {
		if line != "" {
			fmt.Fprintln(w, strings.TrimRight(line, " \n"))
		}
	}
}

// duration prints 30m, 1h, 1h30m rather than 30m0s, 1h0m0s.
func duration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// fields prints "key  value" lines aligned.
func fields(w io.Writer, kv ...string) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for i := 0; i+1 < len(kv); i += 2 {
		fmt.Fprintf(tw, "%s\t%s\n", kv[i], kv[i+1])
	}
	tw.Flush()
}

func ts(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04:05Z")
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	if stem, ok := strings.CutSuffix(what, "ry"); ok {
		return fmt.Sprintf("%d %sries", n, stem) // entry, not entrys
	}
	return fmt.Sprintf("%d %ss", n, what)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// splitChannel parses VENDOR/NAME.
func splitChannel(what, s string) (string, string, error) {
	v, n, ok := strings.Cut(s, "/")
	if !ok || v == "" || n == "" || strings.Contains(n, "/") {
		return "", "", usage(fmt.Errorf("%s %q: want VENDOR/NAME, e.g. acme/ipc", what, s))
	}
	return v, n, nil
}

func required(name, value, example string) error {
	if value == "" {
		return usage(fmt.Errorf("--%s is required (%s)", name, example))
	}
	return nil
}

// --- whoami ---

func newWhoamiCmd(f *adminFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "whoami",
		Short: "Show the token's identity: tenant and role",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var p server.Principal
			raw, err := f.call(cmd.Context(), http.MethodGet, "/v1/whoami", nil, nil, &p)
			if err != nil {
				return err
			}
			return f.show(cmd.OutOrStdout(), raw, func(w io.Writer) {
				tenant := p.Tenant
				if tenant == "" {
					tenant = "(operator)"
				}
				fields(w, "token", p.TokenID, "name", orDash(p.Name), "tenant", tenant, "role", string(p.Role))
			})
		},
	}
}

// --- tenants ---

func newTenantsCmd(f *adminFlags) *cobra.Command {
	var kind, name string
	var internal bool
	create := &cobra.Command{
		Use:   "create ID --kind vendor|org --name NAME",
		Short: "Create a vendor or an organisation (operator admin tokens only)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := required("kind", kind, "vendor or org"); err != nil {
				return err
			}
			if err := required("name", name, `a display name, e.g. "Contoso Hospitals"`); err != nil {
				return err
			}
			var t server.TenantInfo
			raw, err := f.call(cmd.Context(), http.MethodPost, "/v1/tenants", nil, server.TenantInfo{ID: args[0], Kind: kind, Name: name, Internal: internal}, &t)
			if err != nil {
				return err
			}
			return f.show(cmd.OutOrStdout(), raw, func(w io.Writer) {
				fmt.Fprintf(w, "created %s tenant %s (%s)\n", t.Kind, t.ID, t.Name)
			})
		},
	}
	create.Flags().StringVar(&kind, "kind", "", "vendor (publishes content) or org (owns devices)")
	create.Flags().StringVar(&name, "name", "", "display name")
	create.Flags().BoolVar(&internal, "internal", false, "an organisation of the vendor's own machines, reached by a plan's internal-only first wave")
	list := &cobra.Command{
		Use:   "list",
		Short: "List the tenants the token may see",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var tenants []server.TenantInfo
			raw, err := f.call(cmd.Context(), http.MethodGet, "/v1/tenants", nil, nil, &tenants)
			if err != nil {
				return err
			}
			return f.show(cmd.OutOrStdout(), raw, func(w io.Writer) {
				var rows [][]string
				for _, t := range tenants {
					rows = append(rows, []string{t.ID, t.Kind, t.Name, ts(t.CreatedAt)})
				}
				table(w, []string{"ID", "KIND", "NAME", "CREATED"}, rows)
			})
		},
	}
	return group("tenants", "Create and list vendors and organisations", create, list)
}

// --- channels ---

func newChannelsCmd(f *adminFlags) *cobra.Command {
	var kind, category string
	var unpausable bool
	create := &cobra.Command{
		Use:   "create VENDOR/NAME [--kind content|agent] [--category C] [--unpausable]",
		Short: "Create a channel: a vendor's stream of artifacts of one kind",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			vendor, name, err := splitChannel("channel", args[0])
			if err != nil {
				return err
			}
			var c server.ChannelInfo
			req := server.ChannelInfo{Vendor: vendor, Name: name, Kind: kind, Category: category, Unpausable: unpausable}
			raw, err := f.call(cmd.Context(), http.MethodPost, "/v1/channels", nil, req, &c)
			if err != nil {
				return err
			}
			return f.show(cmd.OutOrStdout(), raw, func(w io.Writer) {
				fmt.Fprintf(w, "created channel %s (kind %s, category %s, unpausable %s)\n", c.ID, c.Kind, c.Category, yesNo(c.Unpausable))
			})
		},
	}
	create.Flags().StringVar(&kind, "kind", "content", "content (detection bundles) or agent (agent builds)")
	create.Flags().StringVar(&category, "category", "detection", "category, e.g. detection or system-critical")
	create.Flags().BoolVar(&unpausable, "unpausable", false, "organisations' paused track does not hold this channel back")
	list := &cobra.Command{
		Use:   "list",
		Short: "List the channels the token may see",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var cs []server.ChannelInfo
			raw, err := f.call(cmd.Context(), http.MethodGet, "/v1/channels", nil, nil, &cs)
			if err != nil {
				return err
			}
			return f.show(cmd.OutOrStdout(), raw, func(w io.Writer) {
				var rows [][]string
				for _, c := range cs {
					rows = append(rows, []string{c.ID, c.Kind, c.Category, yesNo(c.Unpausable)})
				}
				table(w, []string{"CHANNEL", "KIND", "CATEGORY", "UNPAUSABLE"}, rows)
			})
		},
	}
	return group("channels", "Create and list channels", create, list)
}

// --- tokens ---

func newTokensCmd(f *adminFlags) *cobra.Command {
	var tenant, role, name string
	create := &cobra.Command{
		Use:   "create --tenant T --role R [--name N]",
		Short: "Create an API token and print its secret, once",
		Long: `Create an API token. Roles: admin (the operator's; no tenant), publisher and
approver (vendor tenants), org-admin (organisations), viewer (either). The secret
is printed once; the server keeps only its hash.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := required("role", role, "admin, publisher, approver, org-admin or viewer"); err != nil {
				return err
			}
			if tenant == "" && role != string(store.RoleAdmin) {
				return usage(fmt.Errorf("--tenant is required for a %s token", role))
			}
			var t server.TokenInfo
			raw, err := f.call(cmd.Context(), http.MethodPost, "/v1/tokens", nil, server.TokenInfo{Tenant: tenant, Role: role, Name: name}, &t)
			if err != nil {
				return err
			}
			return f.show(cmd.OutOrStdout(), raw, func(w io.Writer) {
				scope := "the operator"
				if t.Tenant != "" {
					scope = t.Tenant
				}
				fmt.Fprintf(w, "created token %s: %s for %s\n", t.ID, t.Role, scope)
				fmt.Fprintf(w, "secret: %s\n", t.Token)
				fmt.Fprintln(cmd.ErrOrStderr(), "The secret is shown only now; the server keeps its hash. Store it safely.")
			})
		},
	}
	create.Flags().StringVar(&tenant, "tenant", "", "tenant the token acts for (none for admin)")
	create.Flags().StringVar(&role, "role", "", "admin, publisher, approver, org-admin or viewer")
	create.Flags().StringVar(&name, "name", "", "what the token is for, e.g. ci-pipeline")

	var listTenant string
	list := &cobra.Command{
		Use:   "list [--tenant T]",
		Short: "List API tokens (never their secrets)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			q := url.Values{}
			if listTenant != "" {
				q.Set("tenant", listTenant)
			}
			var toks []server.TokenInfo
			raw, err := f.call(cmd.Context(), http.MethodGet, "/v1/tokens", q, nil, &toks)
			if err != nil {
				return err
			}
			return f.show(cmd.OutOrStdout(), raw, func(w io.Writer) {
				var rows [][]string
				for _, t := range toks {
					rows = append(rows, []string{t.ID, orDash(t.Tenant), t.Role, orDash(t.Name), ts(t.CreatedAt), orDash(t.CreatedBy), yesNo(t.Revoked)})
				}
				table(w, []string{"ID", "TENANT", "ROLE", "NAME", "CREATED", "CREATED BY", "REVOKED"}, rows)
			})
		},
	}
	list.Flags().StringVar(&listTenant, "tenant", "", "only this tenant's tokens (operator admin tokens)")
	revoke := &cobra.Command{
		Use:   "revoke ID",
		Short: "Revoke an API token; requests with it fail from now on",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			raw, err := f.call(cmd.Context(), http.MethodDelete, "/v1/tokens/"+url.PathEscape(args[0]), nil, nil, nil)
			if err != nil {
				return err
			}
			return f.show(cmd.OutOrStdout(), raw, func(w io.Writer) { fmt.Fprintf(w, "revoked token %s\n", args[0]) })
		},
	}
	return group("tokens", "Create, list and revoke API tokens", create, list, revoke)
}

// --- enrolment tokens ---

func newEnrollTokensCmd(f *adminFlags) *cobra.Command {
	var hours int
	var expires time.Duration
	var maxUses int64
	create := &cobra.Command{
		Use:   "create ORG [--max-uses N] [--expires 72h]",
		Short: "Create a token that lets an organisation's devices enrol, and print it once",
		Long: `Create an enrolment token for ORG and print its secret once. Give it to the
installer of the devices, limited to what it is for: --max-uses (the devices it
may enrol; 0 for no limit) and --expires (a duration, whole hours, at most
8760h; 0 for never). A leaked token can be revoked; devices it enrolled stay.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if cmd.Flags().Changed("expires") {
				if expires < 0 || expires%time.Hour != 0 {
					return usage(fmt.Errorf("--expires %v: want whole hours, 0 for never", expires))
				}
				hours = int(expires / time.Hour)
			}
			if hours < 0 {
				return usage(fmt.Errorf("--expires-in-hours %d: want 0 (never) or more", hours))
			}
			if maxUses < 0 {
				return usage(fmt.Errorf("--max-uses %d: want 0 (no limit) or more", maxUses))
			}
			var t struct {
				ID        string    `json:"id"`
				Org       string    `json:"org"`
				Token     string    `json:"token"`
				ExpiresAt time.Time `json:"expires_at"`
				MaxUses   int64     `json:"max_uses"`
			}
			body := map[string]any{"expires_in_hours": hours, "max_uses": maxUses}
			raw, err := f.call(cmd.Context(), http.MethodPost, "/v1/orgs/"+url.PathEscape(args[0])+"/enroll-tokens", nil, body, &t)
			if err != nil {
				return err
			}
			return f.show(cmd.OutOrStdout(), raw, func(w io.Writer) {
				expires := "never"
				if !t.ExpiresAt.IsZero() {
					expires = ts(t.ExpiresAt)
				}
				uses := "any number of devices"
				if t.MaxUses > 0 {
					uses = fmt.Sprintf("at most %d devices", t.MaxUses)
				}
				fmt.Fprintf(w, "created enrolment token %s for %s (%s; expires %s)\n", t.ID, t.Org, uses, expires)
				fmt.Fprintf(w, "secret: %s\n", t.Token)
				fmt.Fprintln(cmd.ErrOrStderr(), "The secret is shown only now; give it to the devices' installer.")
			})
		},
	}
	create.Flags().Int64Var(&maxUses, "max-uses", 0, "devices the token may enrol (0: no limit)")
	create.Flags().DurationVar(&expires, "expires", 0, "how long the token lasts, in whole hours, e.g. 72h (0: never)")
	create.Flags().IntVar(&hours, "expires-in-hours", 0, "hours until the token expires (0: never, at most 8760); --expires says it as a duration")
	list := &cobra.Command{
		Use:   "list ORG",
		Short: "List an organisation's enrolment tokens with their uses (never their secrets)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var toks []struct {
				ID        string     `json:"id"`
				CreatedAt time.Time  `json:"created_at"`
				ExpiresAt *time.Time `json:"expires_at"`
				MaxUses   int64      `json:"max_uses"`
				Uses      int64      `json:"uses"`
				State     string     `json:"state"`
			}
			raw, err := f.call(cmd.Context(), http.MethodGet, "/v1/orgs/"+url.PathEscape(args[0])+"/enroll-tokens", nil, nil, &toks)
			if err != nil {
				return err
			}
			return f.show(cmd.OutOrStdout(), raw, func(w io.Writer) {
				var rows [][]string
				for _, t := range toks {
					expires, limit := "never", "-"
					if t.ExpiresAt != nil {
						expires = ts(*t.ExpiresAt)
					}
					if t.MaxUses > 0 {
						limit = fmt.Sprint(t.MaxUses)
					}
					rows = append(rows, []string{t.ID, t.State, fmt.Sprint(t.Uses), limit, ts(t.CreatedAt), expires})
				}
				table(w, []string{"ID", "STATE", "USES", "MAX", "CREATED", "EXPIRES"}, rows)
			})
		},
	}
	var reason string
	revoke := &cobra.Command{
		Use:   "revoke ORG ID --reason R",
		Short: "Stop an enrolment token enrolling devices (devices it enrolled stay)",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := required("reason", reason, "say why; it goes into the audit log"); err != nil {
				return err
			}
			raw, err := f.call(cmd.Context(), http.MethodPost, "/v1/orgs/"+url.PathEscape(args[0])+"/enroll-tokens/"+url.PathEscape(args[1])+"/revoke", nil,
				map[string]string{"reason": reason}, nil)
			if err != nil {
				return err
			}
			return f.show(cmd.OutOrStdout(), raw, func(w io.Writer) { fmt.Fprintf(w, "revoked enrolment token %s of %s\n", args[1], args[0]) })
		},
	}
	revoke.Flags().StringVar(&reason, "reason", "", "why (kept in the audit log)")
	return group("enroll-tokens", "Create, list and revoke device enrolment tokens", create, list, revoke)
}

// --- devices ---

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
		Args:  cobra.ExactArgs(1),
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
		Args:  cobra.ExactArgs(1),
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
		Args: cobra.ExactArgs(2),
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
		Args:  cobra.ExactArgs(1),
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

// warningText extracts the text of a `299 agent "text"` Warning header.
func warningText(h string) string {
	if i := strings.IndexByte(h, '"'); i >= 0 {
		if s, err := strconv.Unquote(h[i:]); err == nil {
			return s
		}
	}
	return h
}

// --- publish ---

func newPublishCmd(f *adminFlags) *cobra.Command {
	var channel, types, manifests, sigs string
	c := &cobra.Command{
		Use:   "publish [BUNDLE] [--channel VENDOR/NAME] [--types DIR --manifests DIR] [--signatures FILE]",
		Short: "Publish a bundle source to its channel, or upload a vendor's signatures",
		Long: `Publish a bundle (YAML or JSON source, at most 8 MiB) to a channel: the bundle's
own vendor/channel unless --channel says otherwise. The server validates it
against every targeted agent's capability manifest and the channel's current
version, and stores the compiled artifact. With --types and --manifests the
bundle is first validated here, and not sent if it is rejected.

With a signed-update repository the artifact then awaits its vendor's
signatures: "ringfence sign" makes them, "publish --signatures FILE" uploads
them (with or without a bundle).

Exit status: 0 published, 1 rejected (findings are printed, one per line) or
refused, 2 usage, I/O error, unreachable server or bad token.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 && sigs == "" {
				return usage(errors.New("give a BUNDLE to publish, --signatures FILE to upload, or both"))
			}
			if len(args) == 1 {
				if err := f.publish(cmd, args[0], channel, types, manifests); err != nil {
					return err
				}
			}
			if sigs == "" {
				return nil
			}
			b, err := readUpTo(sigs, 64<<20)
			if err != nil {
				return usage(err)
			}
			var req trust.Request
			if err := json.Unmarshal(b, &req); err != nil || req.Vendor == "" {
				return usage(fmt.Errorf("%s: not signatures made by ringfence sign (%v)", sigs, err))
			}
			return f.uploadSignatures(cmd, req)
		},
	}
	c.Flags().StringVar(&channel, "channel", "", "publish to VENDOR/NAME (default: the bundle's vendor/channel)")
	c.Flags().StringVar(&types, "types", "", "validate locally first: directory of template types")
	c.Flags().StringVar(&manifests, "manifests", "", "validate locally first: directory of capability manifests")
	c.Flags().StringVar(&sigs, "signatures", "", "upload signatures made by ringfence sign")
	return c
}

func (f *adminFlags) publish(cmd *cobra.Command, path, channel, types, manifests string) error {
	w := cmd.OutOrStdout()
	if (types == "") != (manifests == "") {
		return usage(errors.New("--types and --manifests go together: give both to validate locally, or neither"))
	}
	vendor, name := "", ""
	if channel != "" {
		var err error
		if vendor, name, err = splitChannel("--channel", channel); err != nil {
			return err
		}
	}
	raw, err := readUpTo(path, content.MaxSourceSize+1)
	if err != nil {
		return usage(err)
	}
	if len(raw) > content.MaxSourceSize {
		return rejected(fmt.Errorf("%s: file is larger than the %d MiB limit for content sources: %v", path, content.MaxSourceSize>>20, content.ErrTooLarge))
	}
	if content.IsCompiled(raw) {
		return rejected(fmt.Errorf("%s is a compiled bundle: publish its source (YAML or JSON); the server compiles and hashes it", path))
	}
	b, err := content.ParseBundle(path, raw)
	if err != nil {
		r, err := sourceReport(path, err)
		if err != nil {
			return err
		}
		return writeReports(w, f.json, []*bundleReport{r})
	}
	if channel == "" {
		vendor, name = b.Vendor, b.Channel
	}
	if types != "" {
		cat, err := content.LoadCatalog(types, manifests)
		if err != nil {
			return classify(err)
		}
		if v := cat.Validate(b, 0); !v.Accepted() {
			r := &bundleReport{File: path, Bundle: b.Name(), Findings: v.Findings}
			for _, m := range v.Targeted {
				r.Targeted = append(r.Targeted, m.Agent())
			}
			fmt.Fprintln(cmd.ErrOrStderr(), "ringfence: rejected by local validation; not sent to the server")
			return writeReports(w, f.json, []*bundleReport{r})
		}
	}

	c, err := f.client()
	if err != nil {
		return err
	}
	contentType := "application/yaml"
	if t := strings.TrimSpace(string(raw[:min(len(raw), 64)])); strings.HasPrefix(t, "{") {
		contentType = "application/json"
	}
	apiPath := "/v1/channels/" + url.PathEscape(vendor) + "/" + url.PathEscape(name) + "/publish"
	body, _, err := c.do(cmd.Context(), http.MethodPost, apiPath, nil, raw, contentType)
	var ae *apiError
	if errors.As(err, &ae) && ae.Status == http.StatusUnprocessableEntity && len(ae.Findings) > 0 {
		if f.json {
			if err := writeRawJSON(w, ae.body); err != nil {
				return err
			}
		} else {
			fmt.Fprintf(w, "REJECTED %s (%s) by the server at %s\n", path, b.Name(), c.base)
			printFindings(w, path, localFindings(ae.Findings, path))
		}
		return rejected(fmt.Errorf("bundle rejected: %s: %s", b.Name(), plural(ae.Findings.Errors(), "error")))
	}
	if err != nil {
		return exit(err)
	}
	var res server.PublishResult
	if err := json.Unmarshal(body, &res); err != nil {
		return usage(fmt.Errorf("POST %s: unexpected response from the server: %v", apiPath, err))
	}
	return f.show(w, body, func(w io.Writer) {
		fmt.Fprintf(w, "PUBLISHED %s (%s@%d)\n", path, res.Channel, res.Version)
		fields(w, "  channel", res.Channel, "  version", strconv.FormatUint(res.Version, 10), "  sha256", res.SHA256, "  size", fmt.Sprintf("%d bytes", res.Size))
		switch res.Signing {
		case "production":
			fields(w, "  signing", "signed by the vendor's threshold: every device can verify it")
		case "canary", "unsigned":
			fields(w, "  signing", res.Signing+": "+res.SigningNote)
			vendor, _, _ := strings.Cut(res.Channel, "/")
			fmt.Fprintf(w, "  next: ringfence sign %s --key FILE --expect %s=%s --out SIGS; ringfence publish --signatures SIGS\n",
				vendor, res.Target, res.SHA256)
		}
		printFindings(w, path, localFindings(res.Findings, path))
	})
}

// printFindings prints one finding per line, as content validate does.
func printFindings(w io.Writer, path string, fs content.Findings) {
	for _, f := range fs {
		fmt.Fprintf(w, "  %s: %s [%s]: %s\n", cmp.Or(f.Location, path), f.Level, f.Rule, f)
	}
}

// localFindings points the server's findings, located in its "bundle"
// pseudo-file, at the file the operator published.
func localFindings(fs content.Findings, path string) content.Findings {
	out := make(content.Findings, len(fs))
	for i, f := range fs {
		switch {
		case f.Location == "bundle":
			f.Location = path
		case strings.HasPrefix(f.Location, "bundle:"):
			f.Location = path + strings.TrimPrefix(f.Location, "bundle")
		}
		out[i] = f
	}
	return out
}

// --- releases ---

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
	var planFile, lane string
	var draft, quiet bool
	create := &cobra.Command{
		Use:   "create VENDOR/NAME VERSION [--plan FILE.json] [--lane normal|emergency] [--draft] [-q]",
		Short: "Start rolling a published version out, in waves",
		Long: `Start a release of a published version on a channel. Without --plan the channel
kind's default plan applies (content: internal, canary 0.1%, early 1%, 10%,
broad). A plan file is JSON: {"waves": [{"name": "canary", "share": 10,
"canary": true, "min_devices": 20, "bake": "1h"}, ...]}, shares in basis points
(10000 = all), cumulative, the last wave reaching every device.

--lane emergency is for urgent threat content: every wave and gate is kept,
bake times and deadlines are a quarter, and leaving the canary waves needs two
approvers. --draft creates the release without starting it; start it with
'ringfence release promote ID --reason R'.`,
		Args: cobra.ExactArgs(2),
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
			}{Channel: args[0], Version: version, Lane: lane, Draft: draft}
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
		Args:  cobra.ExactArgs(1),
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
		Args: cobra.ExactArgs(1),
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
			Args:  cobra.ExactArgs(1),
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
	c := group("release", "Create, list, show and follow releases; approve, pause, resume, halt and promote them",
		create, list, show, status, newReleaseWatchCmd(f), approve, pause, resume, halt, promote)
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
		rows = append(rows, []string{strconv.Itoa(i), wv.Name, share, wv.Progress, targeted,
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
		Args: cobra.ExactArgs(1),
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
		Args:  cobra.ExactArgs(1),
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
