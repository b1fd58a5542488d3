package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ringfence/ringfence/internal/manifest"
	"github.com/ringfence/ringfence/internal/server"
	"github.com/ringfence/ringfence/internal/store"
)

// kindNames are what `get` takes, by manifest kind.
var kindNames = map[string]string{
	"channels": manifest.KindChannel, "plans": manifest.KindPlan, "policies": manifest.KindPolicy, "budgets": manifest.KindBudget,
	"kill-switches": manifest.KindKillSwitch, "webhooks": manifest.KindWebhook,
}

func newGetCmd(f *adminFlags) *cobra.Command {
	var output string
	var orgs, vendors []string
	c := &cobra.Command{
		Use:   "get KIND|all [-o yaml|json] [--org ORG]... [--vendor VENDOR]...",
		Short: "Print objects as the files ringfence apply reads",
		Long: `Print today's objects of a kind in the format ringfence apply reads (YAML
documents; -o json for one JSON array): channels, plans, policies, budgets,
kill-switches, webhooks, or all. Policies and budgets are those of the
organisations the token may read (--org narrows them), plans those of the
vendors it may read (--vendor narrows them). Keep the output in Git,
edit it, and apply it: ringfence get all > fleet.yaml; ringfence apply -f
fleet.yaml --dry-run shows no change. Webhook secrets are never printed.`,
		Args: exactArgs(1),
		ValidArgs: func() []string {
			out := []string{"all"}
			for k := range kindNames {
				out = append(out, k)
			}
			slices.Sort(out)
			return out
		}(),
		RunE: func(cmd *cobra.Command, args []string) error {
			var kinds []string
			switch k, ok := kindNames[args[0]]; {
			case args[0] == "all":
				kinds = manifest.Kinds
			case ok:
				kinds = []string{k}
			default:
				return usage(fmt.Errorf("kind %q: want all, channels, plans, policies, budgets, kill-switches or webhooks", args[0]))
			}
			if output != "yaml" && output != "json" {
				return usage(fmt.Errorf("-o %q: want yaml or json", output))
			}
			if len(orgs) == 0 && (slices.Contains(kinds, manifest.KindPolicy) || slices.Contains(kinds, manifest.KindBudget)) {
				var err error
				if orgs, err = f.readableTenants(cmd.Context(), store.TenantOrg); err != nil {
					return err
				}
			}
			if len(vendors) == 0 && slices.Contains(kinds, manifest.KindPlan) {
				var err error
				if vendors, err = f.readableTenants(cmd.Context(), store.TenantVendor); err != nil {
					return err
				}
			}
			objs, err := f.fetchObjects(cmd.Context(), kinds, orgs, vendors)
			if err != nil {
				return err
			}
			if output == "json" || f.json {
				if objs == nil {
					objs = []manifest.Object{}
				}
				b, _ := json.MarshalIndent(objs, "", "  ")
				_, err := fmt.Fprintf(cmd.OutOrStdout(), "%s\n", b)
				return err
			}
			return manifest.Marshal(cmd.OutOrStdout(), objs)
		},
	}
	c.Flags().StringVarP(&output, "output", "o", "yaml", "yaml or json")
	c.Flags().StringSliceVar(&orgs, "org", nil, "the organisations whose policies and budgets to print (default: every one the token may read)")
	c.Flags().StringSliceVar(&vendors, "vendor", nil, "the vendors whose plans to print (default: every one the token may read)")
	return c
}

func newApplyCmd(f *adminFlags) *cobra.Command {
	var files []string
	var dryRun, prune bool
	c := &cobra.Command{
		Use:   "apply -f FILE|DIR [-f ...] [--dry-run] [--prune]",
		Short: "Make the server's channels, policies, budgets, kill switches and webhooks what files declare",
		Long: `Read objects from YAML or JSON files (a directory: its *.yaml, *.yml and
*.json files), check them against the schema (docs/objects.schema.json;
ringfence apply --schema prints it), and make the changes that bring the server
to them through the API: each change is authorised for the token and audited
as if made by hand. Objects already as declared are left alone, so applying
twice changes nothing.

--dry-run prints the changes and makes none. --prune also removes what the
files do not declare, within what they declare: of the kinds they name, for
the organisations and webhook owners they name; webhooks are deleted, policies
go back to ga with no windows, budgets to no cap, kill switches are released.
Channels are never deleted.

Exit status: 0 all made (or nothing to do), 1 an invalid file or a change
refused (each named with its file and line), 2 usage or an unreachable server.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if printSchema, _ := cmd.Flags().GetBool("schema"); printSchema {
				_, err := cmd.OutOrStdout().Write(manifest.Schema)
				return err
			}
			if len(files) == 0 {
				return usage(errors.New("-f FILE|DIR is required"))
			}
			want, err := readManifests(files)
			if err != nil {
				return err
			}
			var orgs, vendors, kinds []string
			for _, o := range want {
				if !slices.Contains(kinds, o.Kind) {
					kinds = append(kinds, o.Kind)
				}
				if o.Org != "" && o.Kind != manifest.KindWebhook && !slices.Contains(orgs, o.Org) {
					orgs = append(orgs, o.Org)
				}
				if o.Kind == manifest.KindPlan && !slices.Contains(vendors, o.Vendor) {
					vendors = append(vendors, o.Vendor)
				}
			}
			have, err := f.fetchObjects(cmd.Context(), kinds, orgs, vendors)
			if err != nil {
				return err
			}
			plan := manifest.Plan(want, have, prune)
			out := cmd.OutOrStdout()
			if len(plan) == 0 {
				fmt.Fprintln(out, "no change: the server already is as declared")
				return nil
			}
			var failed []string
			for _, c := range plan {
				fmt.Fprintln(out, c)
				if c.Op == manifest.OpRefuse {
					failed = append(failed, fmt.Sprintf("%s: cannot be changed through the API", c.Want.Key()))
					continue
				}
				if dryRun {
					continue
				}
				if err := f.applyChange(cmd.Context(), out, c); err != nil {
					where := c.Want.Key()
					if c.Want.Source != "" {
						where = c.Want.Source + ": " + where
					}
					failed = append(failed, fmt.Sprintf("%s: %v", where, err))
					fmt.Fprintf(out, "    failed: %v\n", err)
				}
			}
			if dryRun {
				fmt.Fprintf(out, "dry run: %d change(s), none made\n", len(plan))
			}
			if len(failed) > 0 {
				return rejected(fmt.Errorf("%d of %d change(s) not made:\n  %s", len(failed), len(plan), strings.Join(failed, "\n  ")))
			}
			return nil
		},
	}
	c.Flags().StringSliceVarP(&files, "filename", "f", nil, "a file or a directory of *.yaml, *.yml and *.json files (repeatable)")
	c.Flags().BoolVar(&dryRun, "dry-run", false, "print the changes, make none")
	c.Flags().BoolVar(&prune, "prune", false, "also remove what the files do not declare, within the kinds and scopes they declare")
	c.Flags().Bool("schema", false, "print the JSON Schema of the files and exit")
	return c
}

// readManifests reads every file, and every *.yaml, *.yml and *.json of
// every directory, in name order; it reports every problem of every file.
func readManifests(paths []string) ([]manifest.Object, error) {
	var files []string
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			return nil, usage(err)
		}
		if !st.IsDir() {
			files = append(files, p)
			continue
		}
		entries, err := os.ReadDir(p)
		if err != nil {
			return nil, usage(err)
		}
		for _, e := range entries {
			if ext := filepath.Ext(e.Name()); !e.IsDir() && (ext == ".yaml" || ext == ".yml" || ext == ".json") {
				files = append(files, filepath.Join(p, e.Name()))
			}
		}
	}
	var objs []manifest.Object
	var problems []string
	for _, name := range files {
		fh, err := os.Open(name)
		if err != nil {
			return nil, usage(err)
		}
		got, err := manifest.Parse(name, fh)
		fh.Close()
		var me *manifest.Error
		switch {
		case errors.As(err, &me):
			problems = append(problems, me.Problems...)
		case err != nil:
			problems = append(problems, err.Error())
		}
		objs = append(objs, got...)
	}
	if err := manifest.Dedupe(objs); err != nil {
		problems = append(problems, err.(*manifest.Error).Problems...)
	}
	if len(problems) > 0 {
		return nil, rejected(&manifest.Error{Problems: problems})
	}
	if len(objs) == 0 {
		return nil, usage(fmt.Errorf("no object in %s", strings.Join(paths, ", ")))
	}
	return objs, nil
}

// readableTenants are the tenants of a kind the token may read.
func (f *adminFlags) readableTenants(ctx context.Context, kind store.TenantKind) ([]string, error) {
	var ts []server.TenantInfo
	if _, err := f.call(ctx, http.MethodGet, "/v1/tenants", nil, nil, &ts); err != nil {
		return nil, err
	}
	var out []string
	for _, t := range ts {
		if t.Kind == string(kind) {
			out = append(out, t.ID)
		}
	}
	return out, nil
}

// fetchObjects reads the server's objects of kinds: policies and budgets
// of orgs only, plans of vendors only.
func (f *adminFlags) fetchObjects(ctx context.Context, kinds, orgs, vendors []string) ([]manifest.Object, error) {
	var out []manifest.Object
	for _, kind := range kinds {
		switch kind {
		case manifest.KindPlan:
			for _, vendor := range vendors {
				var ps []server.PlanTemplateInfo
				if _, err := f.call(ctx, http.MethodGet, "/v1/vendors/"+url.PathEscape(vendor)+"/plans", nil, nil, &ps); err != nil {
					return nil, err
				}
				for _, p := range ps {
					out = append(out, manifest.Object{Kind: kind, Vendor: p.Vendor, Name: p.Name, Plan: manifest.PlanValues(p.Plan)})
				}
			}
		case manifest.KindChannel:
			var cs []server.ChannelInfo
			if _, err := f.call(ctx, http.MethodGet, "/v1/channels", nil, nil, &cs); err != nil {
				return nil, err
			}
			for _, c := range cs {
				out = append(out, manifest.Object{Kind: kind, Vendor: c.Vendor, Name: c.Name, Type: c.Kind, Category: c.Category, Unpausable: c.Unpausable})
			}
		case manifest.KindPolicy:
			for _, org := range orgs {
				var ps []server.PolicyInfo
				if _, err := f.call(ctx, http.MethodGet, "/v1/orgs/"+url.PathEscape(org)+"/policies", nil, nil, &ps); err != nil {
					return nil, err
				}
				for _, p := range ps {
					out = append(out, manifest.Object{Kind: kind, Org: org, Channel: p.Channel, Track: p.Track, Windows: p.Windows})
				}
			}
		case manifest.KindBudget:
			for _, org := range orgs {
				var b server.Budget
				if _, err := f.call(ctx, http.MethodGet, "/v1/orgs/"+url.PathEscape(org)+"/budget", nil, nil, &b); err != nil {
					return nil, err
				}
				out = append(out, manifest.Object{Kind: kind, Org: org, HourlyCapBP: &b.HourlyCap})
			}
		case manifest.KindKillSwitch:
			var ks []store.KillSwitch
			if _, err := f.call(ctx, http.MethodGet, "/v1/kill-switches", nil, nil, &ks); err != nil {
				return nil, err
			}
			for _, k := range ks {
				out = append(out, manifest.Object{Kind: kind, Scope: k.Scope, Engaged: &k.Engaged, Reason: k.Reason})
			}
		case manifest.KindWebhook:
			var hs []server.WebhookInfo
			if _, err := f.call(ctx, http.MethodGet, "/v1/webhooks", nil, nil, &hs); err != nil {
				return nil, err
			}
			for _, h := range hs {
				out = append(out, manifest.Object{Kind: kind, Vendor: h.Vendor, Org: h.Org, URL: h.URL, Events: h.Events, Format: h.Format,
					Enabled: h.Enabled, ServerID: h.ID})
			}
		}
	}
	return out, nil
}

// applyChange makes one change through the API.
func (f *adminFlags) applyChange(ctx context.Context, out io.Writer, c manifest.Change) error {
	o := c.Want
	call := func(method, path string, body any, dst any) error {
		_, err := f.call(ctx, method, path, nil, body, dst)
		return err
	}
	switch o.Kind {
	case manifest.KindChannel:
		return call(http.MethodPost, "/v1/channels", server.ChannelInfo{Vendor: o.Vendor, Name: o.Name, Kind: o.Type, Category: o.Category, Unpausable: o.Unpausable}, nil)
	case manifest.KindPlan:
		path := "/v1/vendors/" + url.PathEscape(o.Vendor) + "/plans/" + url.PathEscape(o.Name)
		if c.Op == manifest.OpPrune {
			return call(http.MethodDelete, path, nil, nil)
		}
		return call(http.MethodPut, path, o.Plan, nil)
	case manifest.KindPolicy:
		vendor, name, _ := strings.Cut(o.Channel, "/")
		windows := o.Windows
		if windows == nil {
			windows = []string{}
		}
		return call(http.MethodPut, "/v1/orgs/"+url.PathEscape(o.Org)+"/policies/"+url.PathEscape(vendor)+"/"+url.PathEscape(name),
			server.PolicyInfo{Track: o.Track, Windows: windows}, nil)
	case manifest.KindBudget:
		return call(http.MethodPut, "/v1/orgs/"+url.PathEscape(o.Org)+"/budget", server.Budget{Org: o.Org, HourlyCap: *o.HourlyCapBP}, nil)
	case manifest.KindKillSwitch:
		path := "/v1/kill-switch"
		if o.Scope != "*" {
			vendor, name, _ := strings.Cut(o.Scope, "/")
			path = "/v1/channels/" + url.PathEscape(vendor) + "/" + url.PathEscape(name) + "/kill-switch"
		}
		return call(http.MethodPut, path, map[string]any{"engaged": *o.Engaged, "reason": o.Reason}, nil)
	case manifest.KindWebhook:
		if c.Have != nil && (c.Op == manifest.OpPrune || c.Op == manifest.OpReplace) {
			if err := call(http.MethodDelete, "/v1/webhooks/"+url.PathEscape(c.Have.ServerID), nil, nil); err != nil {
				return err
			}
			if c.Op == manifest.OpPrune {
				return nil
			}
		}
		if c.Op == manifest.OpUpdate {
			return call(http.MethodPut, "/v1/webhooks/"+url.PathEscape(c.Have.ServerID)+"/enabled", map[string]bool{"enabled": *o.Enabled}, nil)
		}
		var made server.WebhookInfo
		if err := call(http.MethodPost, "/v1/webhooks", server.WebhookInfo{Vendor: o.Vendor, Org: o.Org, URL: o.URL, Events: o.Events, Format: o.Format}, &made); err != nil {
			return err
		}
		fmt.Fprintf(out, "    secret (shown once; verify deliveries with it): %s\n", made.Secret)
		if o.Enabled != nil && !*o.Enabled {
			return call(http.MethodPut, "/v1/webhooks/"+url.PathEscape(made.ID)+"/enabled", map[string]bool{"enabled": false}, nil)
		}
		return nil
	}
	return fmt.Errorf("unknown kind %q", o.Kind)
}
