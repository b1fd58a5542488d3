package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/ringfence/ringfence/internal/store/sqlstore"
)

func newDBCmd() *cobra.Command {
	var data, db string
	c := &cobra.Command{
		Use:   "db",
		Short: "The database's schema: which migrations are applied, and applying them",
		Long: `The schema is migrated with goose (github.com/pressly/goose): each migration
once, in a transaction, with PostgreSQL's advisory lock held so that replicas
starting together migrate once. ringfence server applies pending migrations
when it starts; "db migrate" does it beforehand, "db status" shows where the
database stands. A database migrated before goose is adopted the first time
either opens it. --data and --db are as for ringfence server (--db defaults
to $RINGFENCE_DB).`,
	}
	open := func(ctx context.Context, migrate bool) (*sqlstore.Store, error) {
		if data == "" && db == "" {
			db = os.Getenv("RINGFENCE_DB")
		}
		if data == "" && db == "" {
			return nil, usage(errors.New("give --data DIR (embedded SQLite) or --db URL"))
		}
		var st *sqlstore.Store
		var err error
		if migrate {
			st, err = sqlstore.Open(ctx, db, data)
		} else {
			st, err = sqlstore.OpenWithoutMigrating(ctx, db, data)
		}
		if err != nil {
			return nil, usage(err)
		}
		return st, nil
	}
	status := &cobra.Command{
		Use:   "status --data DIR | --db URL",
		Short: "List this build's migrations and when each was applied",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := open(cmd.Context(), false)
			if err != nil {
				return err
			}
			defer st.Close()
			return printMigrations(cmd.Context(), cmd.OutOrStdout(), st)
		},
	}
	migrate := &cobra.Command{
		Use:   "migrate --data DIR | --db URL",
		Short: "Apply the pending migrations",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := open(cmd.Context(), true)
			if err != nil {
				return err
			}
			defer st.Close()
			v, err := st.SchemaVersion(cmd.Context())
			if err != nil {
				return usage(err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "schema at migration %d of %d (%s)\n", v, sqlstore.Migrations(), st.Dialect())
			return nil
		},
	}
	for _, sub := range []*cobra.Command{status, migrate} {
		sub.Flags().StringVar(&data, "data", "", "the server's data directory (its embedded SQLite)")
		sub.Flags().StringVar(&db, "db", "", "database URL, as for ringfence server (default $RINGFENCE_DB)")
	}
	c.AddCommand(status, migrate)
	return c
}

func printMigrations(ctx context.Context, w io.Writer, st *sqlstore.Store) error {
	ms, err := st.Status(ctx)
	if err != nil {
		return usage(err)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "MIGRATION\tAPPLIED")
	pending := 0
	for _, m := range ms {
		at := "pending"
		if !m.AppliedAt.IsZero() {
			at = m.AppliedAt.UTC().Format(time.RFC3339)
		} else {
			pending++
		}
		fmt.Fprintf(tw, "%d\t%s\n", m.Version, at)
	}
	tw.Flush()
	fmt.Fprintf(w, "%d of %d applied (%s)\n", len(ms)-pending, len(ms), st.Dialect())
	return nil
}
