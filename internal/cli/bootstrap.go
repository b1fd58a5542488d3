package cli

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/ringfence/ringfence/internal/server"
	"github.com/ringfence/ringfence/internal/store/sqlstore"
)

func newBootstrapCmd() *cobra.Command {
	var data, db, name, out, auditKey string
	c := &cobra.Command{
		Use:   "bootstrap --data DIR [--db URL] [--out FILE]",
		Short: "Make the operator's first admin token in a store that has none",
		Long: `Make the first admin token of a server that is not in development mode: it
opens the store the server uses (--data and --db as for ringfence server),
refuses if an admin token exists, and audits the token as made by
"bootstrap". The secret is printed once (or written to --out, readable by the
owner only) and never stored. Every other token is made with
"ringfence tokens create" by an admin.

Exit status: 0 made, 1 the store already has an admin token, 2 usage or I/O
error.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if data == "" {
				return usage(errors.New("--data is required (the server's data directory)"))
			}
			if db == "" {
				db = os.Getenv("RINGFENCE_DB") // as the server reads it
			}
			if auditKey == "" {
				auditKey = filepath.Join(data, "audit.key")
			}
			st, err := sqlstore.Open(cmd.Context(), db, data)
			if err != nil {
				return usage(err)
			}
			defer st.Close()
			log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil))
			key, err := keyFile(auditKey, 32, log)
			if err != nil {
				return usage(fmt.Errorf("--audit-key-file: %w", err))
			}
			// The checkpoint key too, so that replicas started side by
			// side on one data directory find both made.
			if _, err := keyFile(filepath.Join(data, "audit-signing.key"), ed25519.SeedSize, log); err != nil {
				return usage(fmt.Errorf("audit-signing.key: %w", err))
			}
			st.SetAuditKey(key)
			sec, err := server.BootstrapAdmin(cmd.Context(), st, name, time.Now())
			if errors.Is(err, server.ErrBootstrapped) {
				return rejected(err)
			}
			if err != nil {
				return usage(err)
			}
			if out == "" {
				fmt.Fprintln(cmd.OutOrStdout(), sec)
				return nil
			}
			fh, err := os.OpenFile(out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
			if err != nil {
				return usage(fmt.Errorf("--out: %w (the token was made: revoke it with ringfence tokens revoke if it is lost)", err))
			}
			_, err = fmt.Fprintln(fh, sec)
			if cerr := fh.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return usage(err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "admin token written to %s\n", out)
			return nil
		},
	}
	f := c.Flags()
	f.StringVar(&data, "data", "", "the server's data directory")
	f.StringVar(&db, "db", "", "database URL, as for ringfence server (default $RINGFENCE_DB; empty: embedded SQLite in --data)")
	f.StringVar(&name, "name", "first admin", "the token's name")
	f.StringVar(&out, "out", "", "write the secret to this new file (mode 0600) instead of printing it")
	f.StringVar(&auditKey, "audit-key-file", "", "the audit log's key, as for ringfence server (default <data>/audit.key)")
	return c
}
