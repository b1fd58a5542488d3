package cli

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/spf13/cobra"

	"github.com/ringfence/ringfence/internal/server"
	"github.com/ringfence/ringfence/internal/store"
)

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
		Args:  exactArgs(1),
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
		Args: exactArgs(1),
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
		Args:  exactArgs(1),
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
		Args:  exactArgs(2),
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
