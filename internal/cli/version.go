package cli

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ringfence/ringfence/internal/version"
)

func newVersionCmd() *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   "version",
		Short: "Print this build's version",
		Long: `Print this build's version: the one a release build was linked with
(-ldflags "-X github.com/ringfence/ringfence/internal/version.version=v1.4.0"),
else the module version Go recorded, else "devel"; then the commit it was built
from when Go stamped it, the Go toolchain and the platform. A running server
answers the same version in GET /healthz and in the ringfence_build_info metric.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			in := version.Get()
			if asJSON {
				b, err := json.MarshalIndent(in, "", "  ")
				if err != nil {
					return err
				}
				_, err = fmt.Fprintf(cmd.OutOrStdout(), "%s\n", b)
				return err
			}
			_, err := fmt.Fprintln(cmd.OutOrStdout(), versionLine(in))
			return err
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON: version, revision, time, modified, go, platform")
	return c
}

// versionLine is "ringfence v1.4.0 (commit f27f0124181c, 2026-12-07T06:05:52Z, go1.26.8, linux/amd64)".
func versionLine(in version.Info) string {
	var parts []string
	if in.Revision != "" {
		rev := in.Revision[:min(12, len(in.Revision))]
		if in.Modified {
			rev += " with uncommitted changes"
		}
		parts = append(parts, "commit "+rev)
	}
	if in.Time != "" {
		parts = append(parts, in.Time)
	}
	parts = append(parts, in.Go, in.Platform)
	return fmt.Sprintf("ringfence %s (%s)", in.Version, strings.Join(parts, ", "))
}
