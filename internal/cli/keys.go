package cli

import (
	"fmt"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/ringfence/ringfence/internal/trust"
)

// newKeysCmd is the operator's offline key ceremony: creating the signed
// update repository and delegating vendors.
func newKeysCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "keys",
		Short: "Create the signed-update (TUF) repository and delegate vendors",
		Long: `The repository lives in <data>/tuf: the initial trusted root (root.json, which
agents ship with), the published metadata and the server's online snapshot and
timestamp keys. The offline keys (root-N.key, targets.key) go to --keys, a
directory to keep off the server (removable media, a vault).`,
		Args:                  cobra.NoArgs,
		RunE:                  func(cmd *cobra.Command, args []string) error { return cmd.Help() },
		DisableFlagsInUseLine: true,
	}
	var data, keys string
	var rootKeys, threshold int
	initCmd := &cobra.Command{
		Use:   "init --data DIR --keys DIR [--root-keys 3] [--root-threshold 2]",
		Short: "Create the repository: root keys (threshold), targets, snapshot and timestamp keys",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if data == "" || keys == "" {
				return usage(fmt.Errorf("--data and --keys are required"))
			}
			repo := trust.Repo{Dir: filepath.Join(data, "tuf")}
			if err := trust.Init(repo, keys, trust.InitOptions{RootKeys: rootKeys, RootThreshold: threshold, Now: time.Now().UTC()}); err != nil {
				return usage(err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "repository created in %s\n  initial root: %s (ship it with agents)\n  offline keys: %s (keep them off the server)\n",
				repo.Dir, filepath.Join(repo.Dir, "root.json"), keys)
			return nil
		},
	}
	initCmd.Flags().StringVar(&data, "data", "", "the server's data directory")
	initCmd.Flags().StringVar(&keys, "keys", "", "directory for the offline keys")
	initCmd.Flags().IntVar(&rootKeys, "root-keys", 3, "number of root keys")
	initCmd.Flags().IntVar(&threshold, "root-threshold", 2, "root keys needed to sign a new root")

	var out string
	vendorAdd := &cobra.Command{
		Use:   "add VENDOR --data DIR --keys DIR --out FILE",
		Short: "Delegate VENDOR/CHANNEL/* to a new key written to FILE, for the vendor to keep",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if data == "" || keys == "" || out == "" {
				return usage(fmt.Errorf("--data, --keys and --out are required"))
			}
			repo := trust.Repo{Dir: filepath.Join(data, "tuf")}
			if err := trust.AddVendor(repo, keys, args[0], out, time.Now().UTC()); err != nil {
				return usage(err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "vendor %s delegated %s/*/*; its key is in %s\n", args[0], args[0], out)
			return nil
		},
	}
	vendorAdd.Flags().StringVar(&data, "data", "", "the server's data directory")
	vendorAdd.Flags().StringVar(&keys, "keys", "", "directory of the offline keys (targets.key)")
	vendorAdd.Flags().StringVar(&out, "out", "", "file to write the vendor's new private key to")
	vendor := &cobra.Command{
		Use:                   "vendor",
		Short:                 "Delegate vendors' paths to their keys",
		Args:                  cobra.NoArgs,
		RunE:                  func(cmd *cobra.Command, args []string) error { return cmd.Help() },
		DisableFlagsInUseLine: true,
	}
	vendor.AddCommand(vendorAdd)
	c.AddCommand(initCmd, vendor)
	return c
}
