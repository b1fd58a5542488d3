// Package cli holds the ringfence command tree. Commands return errors;
// Run turns them into the documented exit statuses: 0 accepted, 1 rejected
// (the input was read and found wanting), 2 usage or I/O error.
package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"
)

// Exit statuses.
const (
	ExitOK       = 0
	ExitRejected = 1
	ExitUsage    = 2
)

// exitError carries an exit status; Msg, when set, is printed to stderr.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}

func (e *exitError) Unwrap() error { return e.err }

func rejected(err error) error { return &exitError{code: ExitRejected, err: err} }
func usage(err error) error    { return &exitError{code: ExitUsage, err: err} }

// Run executes the command line and returns the process exit status.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := newRoot(stdout, stderr)
	root.SetArgs(args)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return ExitOK
	}
	code, hint := ExitUsage, true
	var ee *exitError
	if errors.As(err, &ee) {
		// Anything else comes from cobra's own parsing: unknown command
		// or flag, which gets the usage hint.
		code, hint, err = ee.code, false, ee.err
	}
	if err == nil {
		return code
	}
	if f := cmd.Flag("json"); f != nil && f.Value.String() == "true" {
		// Under --json the error is JSON too, for the same machines.
		json.NewEncoder(stderr).Encode(struct {
			Error string `json:"error"`
			Exit  int    `json:"exit"`
		}{err.Error(), code})
		return code
	}
	fmt.Fprintln(stderr, "ringfence:", err)
	if hint {
		fmt.Fprintln(stderr, "Run 'ringfence --help' for usage.")
	}
	return code
}

func newRoot(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:           "ringfence",
		Short:         "Safe deployment of endpoint-security content",
		Long:          "Ringfence validates detection content against every agent version that will load it,\nsigns it and rolls it out in waves that halt by themselves.",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error { return usage(fmt.Errorf("%s: %w", c.CommandPath(), err)) })
	root.AddCommand(newContentCmd(), newServerCmd(), newBootstrapCmd(), newDBCmd(), newKeysCmd(), newSimCmd(), newDemoCmd(), newVersionCmd())
	root.AddCommand(newAdminCmds(root)...)
	failuresAreNotUsage(root)
	return root
}

// failuresAreNotUsage marks what a command's run returns as its own
// failure (exit status 2, like an unreachable server), so that Run adds
// the usage hint only to cobra's parsing errors: a port in use is not a
// mistyped command line.
func failuresAreNotUsage(c *cobra.Command) {
	if run := c.RunE; run != nil {
		c.RunE = func(cmd *cobra.Command, args []string) error {
			err := run(cmd, args)
			var ee *exitError
			if err == nil || errors.As(err, &ee) {
				return err
			}
			return &exitError{code: ExitUsage, err: err}
		}
	}
	for _, sub := range c.Commands() {
		failuresAreNotUsage(sub)
	}
}
