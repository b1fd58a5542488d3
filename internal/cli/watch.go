package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/ringfence/ringfence/internal/server"
	"github.com/ringfence/ringfence/internal/store"
	"github.com/spf13/cobra"
)

// unreachableFor is how long watch keeps trying a server that does not
// answer (or answers 5xx/429) before it gives up: long enough for a
// restart or a failover, short enough that a pipeline does not hang on a
// server that is gone.
const unreachableFor = 10 * time.Minute

func newReleaseWatchCmd(f *adminFlags) *cobra.Command {
	var interval, timeout time.Duration
	c := &cobra.Command{
		Use:   "watch ID [--interval 5s] [--timeout D]",
		Short: "Follow a release until it completes (exit 0) or halts (exit 1)",
		Long: `Follow a release as the controller moves it: one line each time its state, wave,
phase or summary changes (with --json, the status as one JSON object a line).

Exit status, for pipelines: 0 when the release completes; 1 when it is halted or
rolled back (or the token may not see it); 2 when the watch itself fails: bad
arguments, a bad token, --timeout passed, or a server that has not answered for
10 minutes. A paused release or one awaiting approval is still followed.`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if interval < 100*time.Millisecond {
				return usage(fmt.Errorf("--interval %v: want at least 100ms", interval))
			}
			if timeout < 0 {
				return usage(fmt.Errorf("--timeout %v: want 0 (none) or more", timeout))
			}
			ctx := cmd.Context()
			if timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, timeout)
				defer cancel()
			}
			c, err := f.client()
			if err != nil {
				return exit(err)
			}
			w := &watcher{out: cmd.OutOrStdout(), errOut: cmd.ErrOrStderr(), json: f.json}
			return w.run(ctx, args[0], interval, func(ctx context.Context) (*server.ReleaseStatus, []byte, error) {
				var st server.ReleaseStatus
				raw, err := c.call(ctx, http.MethodGet, releasePath(args[0], "status"), nil, nil, &st)
				return &st, raw, err
			}, time.Now)
		},
	}
	c.Flags().DurationVar(&interval, "interval", 5*time.Second, "how often to ask the server")
	c.Flags().DurationVar(&timeout, "timeout", 0, "give up (exit 2) after this long; 0: never")
	return c
}

// watcher prints a release's changes until it ends.
type watcher struct {
	out, errOut io.Writer
	json        bool
	last        string
}

// run polls fetch every interval until the release ends or ctx is done.
func (w *watcher) run(ctx context.Context, id string, interval time.Duration, fetch func(context.Context) (*server.ReleaseStatus, []byte, error), now func() time.Time) error {
	var failingSince time.Time
	for {
		st, raw, err := fetch(ctx)
		switch {
		case err == nil:
			failingSince = time.Time{}
			if done, err := w.show(st, raw, now()); done {
				return err
			}
		case ctx.Err() != nil:
			return w.stopped(ctx, id)
		case transient(err):
			if failingSince.IsZero() {
				failingSince = now()
			}
			if now().Sub(failingSince) >= unreachableFor {
				return usage(fmt.Errorf("watch %s: no answer for %v: %v", id, unreachableFor, err))
			}
			fmt.Fprintf(w.errOut, "ringfence: watch %s: %v; trying again\n", id, err)
		default:
			return exit(err)
		}
		select {
		case <-ctx.Done():
			return w.stopped(ctx, id)
		case <-time.After(interval):
		}
	}
}

// stopped is the watch's end before the release's.
func (w *watcher) stopped(ctx context.Context, id string) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return usage(fmt.Errorf("watch %s: --timeout passed before the release completed or halted", id))
	}
	return usage(fmt.Errorf("watch %s: interrupted", id))
}

// show prints st if it changed and says whether the release has ended,
// with the error that carries the exit status.
func (w *watcher) show(st *server.ReleaseStatus, raw []byte, at time.Time) (bool, error) {
	r := st.Release
	// What a person follows: where the release is and what its gates say.
	// The summary alone would print every poll while a wave bakes (it
	// counts the time).
	key := fmt.Sprintf("%s|%d|%s|%s", r.State, r.Wave, r.Phase, r.Reason)
	for _, g := range st.Gates {
		key += "|" + string(g.Outcome)
	}
	if key != w.last {
		w.last = key
		if w.json {
			var compact json.RawMessage = raw
			if b, err := json.Marshal(compact); err == nil {
				fmt.Fprintf(w.out, "%s\n", b)
			}
		} else {
			fmt.Fprintf(w.out, "%s  %s\n", at.UTC().Format("15:04:05"), st.Summary)
		}
	}
	switch store.ReleaseState(r.State) {
	case store.ReleaseCompleted:
		return true, nil
	case store.ReleaseHalted, store.ReleaseRolledBack:
		return true, &exitError{code: ExitRejected}
	}
	return false, nil
}

// transient says whether an error may pass by itself: the server not
// reached, failing (5xx) or asking to slow down (429).
func transient(err error) bool {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae.Status >= 500 || ae.Status == http.StatusTooManyRequests
	}
	var ee *exitError
	return !errors.As(err, &ee)
}
