package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/spf13/cobra"
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
		newWebhooksCmd(f), newGetCmd(f), newApplyCmd(f),
	}
}

// group is a command that only holds subcommands; an unknown subcommand is
// a usage error, not help and exit 0.
func group(use, short string, subs ...*cobra.Command) *cobra.Command {
	c := &cobra.Command{
		Use:                        use,
		Short:                      short,
		Args:                       unknownSub,
		SuggestionsMinimumDistance: 2,
		RunE:                       func(cmd *cobra.Command, args []string) error { return cmd.Help() },
		DisableFlagsInUseLine:      true,
	}
	c.AddCommand(subs...)
	return c
}

// exactArgs wants n arguments and, short of them, names those the
// command's usage line asks for (cobra says only "accepts 1 arg(s),
// received 0").
func exactArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) == n {
			return nil
		}
		// The positional words of the usage line: upper case, not a
		// flag's value, not optional.
		var want []string
		words := strings.Fields(cmd.Use)
		for i, w := range words[1:] {
			flagValue := strings.HasPrefix(words[i], "-") && !strings.Contains(words[i], "=")
			if !flagValue && w != "" && unicode.IsUpper(rune(w[0])) {
				want = append(want, w)
			}
		}
		// The caller prints "ringfence: " before the message.
		name := strings.TrimPrefix(cmd.CommandPath(), cmd.Root().Name()+" ")
		if len(args) < n {
			return fmt.Errorf("%s: give %s (see %s --help)", name, strings.Join(want[len(args):min(n, len(want))], " "), cmd.CommandPath())
		}
		return fmt.Errorf("%s: takes %s, got %d arguments: %s", name, strings.Join(want, " "), len(args), strings.Join(args, " "))
	}
}

// unknownSub refuses an argument to a group of commands as a mistyped
// command, suggesting the nearest (cobra suggests only at the top level).
func unknownSub(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
	if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
		msg += "; did you mean " + strings.Join(s, " or ") + "?"
	}
	return errors.New(msg)
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
