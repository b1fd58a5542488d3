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
	var pubKeys []string
	var vendorNewKeys, vendorThreshold int
	vendorAdd := &cobra.Command{
		Use:   "add VENDOR --data DIR --keys DIR (--key FILE.pub ... | --out DIR [--new-keys 2]) [--threshold 2]",
		Short: "Delegate VENDOR/CHANNEL/* to the vendor's signers' keys, with a threshold",
		Long: `Delegate the vendor's paths to its signers' keys. Each signer runs
"ringfence keys generate" where the key will live and hands over only the .pub
file (--key, once per signer). Without --key, --new-keys key files are written
to --out for the operator to hand out.

Targets installable everywhere need --threshold signatures (default 2: the
two-person rule); devices in canary waves need any one of the keys.`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if data == "" || keys == "" {
				return usage(fmt.Errorf("--data and --keys are required"))
			}
			if (len(pubKeys) == 0) == (out == "") {
				return usage(fmt.Errorf("give the signers' public keys (--key FILE.pub) or a directory for new keys (--out DIR)"))
			}
			o := trust.VendorOptions{NewKeys: vendorNewKeys, OutDir: out, Threshold: vendorThreshold, Now: time.Now().UTC()}
			if len(pubKeys) > 0 {
				o.NewKeys = 0
			}
			for _, f := range pubKeys {
				k, err := trust.LoadPublicKey(f)
				if err != nil {
					return usage(err)
				}
				o.Keys = append(o.Keys, k)
			}
			repo := trust.Repo{Dir: filepath.Join(data, "tuf")}
			files, err := trust.AddVendor(repo, keys, args[0], o)
			if err != nil {
				return usage(err)
			}
			n := len(o.Keys) + len(files)
			t := o.Threshold
			if t == 0 {
				t = min(2, n)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "vendor %s delegated %s/*/* to %d key(s), threshold %d (canary waves: any one)\n", args[0], args[0], n, t)
			for _, f := range files {
				fmt.Fprintf(cmd.OutOrStdout(), "  new key: %s (hand it to one signer)\n", f)
			}
			if len(files) == 0 {
				fmt.Fprintf(cmd.OutOrStdout(), "  the vendor's empty roles await its signers: ringfence sign %s --key FILE\n", args[0])
			}
			return nil
		},
	}
	vendorAdd.Flags().StringVar(&data, "data", "", "the server's data directory")
	vendorAdd.Flags().StringVar(&keys, "keys", "", "directory of the offline keys (targets.key)")
	vendorAdd.Flags().StringVar(&out, "out", "", "directory to write new vendor keys to (VENDOR-1.key ...)")
	vendorAdd.Flags().StringSliceVar(&pubKeys, "key", nil, "a signer's public key file (repeat, or comma-separate)")
	vendorAdd.Flags().IntVar(&vendorNewKeys, "new-keys", 2, "with --out: how many keys to generate")
	vendorAdd.Flags().IntVar(&vendorThreshold, "threshold", 0, "signatures needed outside the canary waves (default 2, or 1 with one key)")

	var genOut string
	generate := &cobra.Command{
		Use:   "generate --out FILE",
		Short: "Create a signing key where it will live; hand over only FILE.pub",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if genOut == "" {
				return usage(fmt.Errorf("--out is required"))
			}
			pub, err := trust.GenerateKey(genOut)
			if err != nil {
				return usage(err)
			}
			id, err := trust.KeyID(pub)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "key %s\n  private: %s (keep it here)\n  public:  %s.pub (give it to the operator)\n", id, genOut, genOut)
			return nil
		},
	}
	generate.Flags().StringVar(&genOut, "out", "", "file for the new private key (FILE.pub gets the public half)")
	vendor := &cobra.Command{
		Use:                   "vendor",
		Short:                 "Delegate vendors' paths to their keys",
		Args:                  cobra.NoArgs,
		RunE:                  func(cmd *cobra.Command, args []string) error { return cmd.Help() },
		DisableFlagsInUseLine: true,
	}
	vendorRevoke := &cobra.Command{
		Use:   "revoke VENDOR --data DIR --keys DIR",
		Short: "Remove a vendor's delegation (a lost or compromised key); add it again with a new key",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if data == "" || keys == "" {
				return usage(fmt.Errorf("--data and --keys are required"))
			}
			if err := trust.RevokeVendor(trust.Repo{Dir: filepath.Join(data, "tuf")}, keys, args[0], time.Now().UTC()); err != nil {
				return usage(err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "vendor %s's key revoked: clients no longer trust what it signed\n", args[0])
			return nil
		},
	}
	vendorRevoke.Flags().StringVar(&data, "data", "", "the server's data directory")
	vendorRevoke.Flags().StringVar(&keys, "keys", "", "directory of the offline keys (targets.key)")
	vendor.AddCommand(vendorAdd, vendorRevoke)

	var with []string
	var newKeys, newThreshold int
	var replace []string
	rotate := &cobra.Command{
		Use:   "rotate-root --data DIR --keys DIR --with KEY,KEY [--new-root-keys N --new-threshold T] [--replace-online timestamp,snapshot]",
		Short: "Publish a new root: new root keys, or new online keys after a compromise",
		Long: `The new root is signed by the current root's threshold of keys (--with) and, when
root keys are replaced, by the new threshold of new ones, so every client walks
from the root it holds to the new one.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if data == "" || keys == "" || len(with) == 0 {
				return usage(fmt.Errorf("--data, --keys and --with are required"))
			}
			o := trust.RotateOptions{NewRootKeys: newKeys, NewThreshold: newThreshold, ReplaceOnline: replace, Now: time.Now().UTC()}
			for _, f := range with {
				k, err := trust.LoadKey(f)
				if err != nil {
					return usage(err)
				}
				o.OldRootKeys = append(o.OldRootKeys, k)
			}
			if err := trust.RotateRoot(trust.Repo{Dir: filepath.Join(data, "tuf")}, keys, o); err != nil {
				return usage(err)
			}
			fmt.Fprintln(cmd.OutOrStdout(), "new root published")
			return nil
		},
	}
	rotate.Flags().StringVar(&data, "data", "", "the server's data directory")
	rotate.Flags().StringVar(&keys, "keys", "", "directory of the offline keys (new root keys are written here)")
	rotate.Flags().StringSliceVar(&with, "with", nil, "current root key files to sign with (at least its threshold)")
	rotate.Flags().IntVar(&newKeys, "new-root-keys", 0, "replace the root keys with this many new ones")
	rotate.Flags().IntVar(&newThreshold, "new-threshold", 0, "threshold of the new root keys")
	rotate.Flags().StringSliceVar(&replace, "replace-online", nil, "online roles whose keys to replace: timestamp, snapshot")
	c.AddCommand(initCmd, vendor, rotate, generate)
	return c
}
