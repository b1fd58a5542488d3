package cli

import (
	"fmt"
	"io"
	"net/http"

	"github.com/spf13/cobra"

	"github.com/ringfence/ringfence/internal/server"
)

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
		Args:  exactArgs(1),
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
		Args:  exactArgs(1),
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
