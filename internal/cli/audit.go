package cli

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ringfence/ringfence/internal/server"
	"github.com/ringfence/ringfence/internal/store"
)

// auditPage is the page size the audit commands read.
const auditPage = 1000

// auditLine is one line of `audit export`: an entry, or a signed
// checkpoint of the entry before it ({"checkpoint": {...}}).
type auditLine struct {
	store.AuditEntry
	Checkpoint *store.AuditCheckpoint `json:"checkpoint,omitempty"`
}

// MarshalJSON writes a checkpoint line as {"checkpoint": {...}} alone.
func (l auditLine) MarshalJSON() ([]byte, error) {
	if l.Checkpoint != nil {
		return json.Marshal(struct {
			Checkpoint *store.AuditCheckpoint `json:"checkpoint"`
		}{l.Checkpoint})
	}
	return json.Marshal(l.AuditEntry)
}

func newAuditCmd(f *adminFlags) *cobra.Command {
	var after int64
	var limit int
	list := &cobra.Command{
		Use:   "list [--after SEQ] [--limit N]",
		Short: "List audit log entries (operator admin tokens)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if after < 0 || limit < 1 || limit > 10000 {
				return usage(errors.New("--after: 0 or more; --limit: 1 to 10000"))
			}
			q := url.Values{"after": {strconv.FormatInt(after, 10)}, "limit": {strconv.Itoa(limit)}}
			var es []store.AuditEntry
			raw, err := f.call(cmd.Context(), http.MethodGet, "/v1/audit", q, nil, &es)
			if err != nil {
				return err
			}
			if len(es) == limit {
				fmt.Fprintf(cmd.ErrOrStderr(), "More entries may follow: add --after %d\n", es[len(es)-1].Seq)
			}
			return f.show(cmd.OutOrStdout(), raw, func(w io.Writer) {
				var rows [][]string
				for _, e := range es {
					rows = append(rows, []string{strconv.FormatInt(e.Seq, 10), ts(e.Time), e.Actor, e.Action, e.Target, orDash(e.Reason)})
				}
				table(w, []string{"SEQ", "TIME", "ACTOR", "ACTION", "TARGET", "REASON"}, rows)
			})
		},
	}
	list.Flags().Int64Var(&after, "after", 0, "start after this sequence number")
	list.Flags().IntVar(&limit, "limit", 100, "entries to list, 1 to 10000")
	return group("audit", "List, export and verify the keyed, checkpointed audit log", list, newAuditVerifyCmd(f), newAuditExportCmd(f), newAuditKeyCmd(f))
}

func newAuditVerifyCmd(f *adminFlags) *cobra.Command {
	var pubFile, file string
	c := &cobra.Command{
		Use:   "verify [--public-key FILE] [--file EXPORT]",
		Short: "Check the audit log's chain and signed checkpoints from its first entry",
		Long: `Check the audit log: its entries are contiguous and each one's hash covers its
content and the previous entry's hash; the server checks those hashes with its
audit key (a keyed HMAC, so someone who can write the database but not read the
key cannot recompute them); every checkpoint is signed with the server's audit
signing key and names the hash its entry has, so a log rewritten, or cut short,
since a checkpoint is found. Exit status 1 names the first bad entry.

--public-key pins the audit signing key (from 'ringfence audit key'); without it
the server's own is trusted. --file checks an export ('ringfence audit export')
offline, with --public-key, no server needed.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var pub ed25519.PublicKey
			if pubFile != "" {
				var err error
				if pub, err = readAuditPublicKey(pubFile); err != nil {
					return usage(err)
				}
			}
			var v server.AuditVerdict
			var err error
			if file != "" {
				if pub == nil {
					return usage(errors.New("--file: give the audit signing key with --public-key to check an export offline"))
				}
				v, err = verifyAuditExport(file, pub)
			} else {
				v, err = verifyAuditOnline(cmd.Context(), f, pub, cmd.ErrOrStderr())
			}
			if err != nil {
				return exit(err)
			}
			w := cmd.OutOrStdout()
			if f.json {
				b, _ := json.Marshal(v)
				if err := writeRawJSON(w, b); err != nil {
					return err
				}
			}
			if !v.Verified {
				return rejected(fmt.Errorf("audit log broken at entry %d: %s", v.BrokenSeq, v.Reason))
			}
			if !f.json {
				fmt.Fprintf(w, "audit log verified: %s, %s\n", plural(int(v.Entries), "entry"), plural(int(v.Checkpoints), "signed checkpoint"))
			}
			return nil
		},
	}
	c.Flags().StringVar(&pubFile, "public-key", "", "the audit signing key's public key (as 'ringfence audit key' prints it)")
	c.Flags().StringVar(&file, "file", "", "check this export offline instead of the server's log")
	return c
}

// verifyAuditOnline reads the log and its checkpoints from the server and
// checks them with the public key, then asks the server to check the
// keyed hashes it alone can.
func verifyAuditOnline(ctx context.Context, f *adminFlags, pub ed25519.PublicKey, stderr io.Writer) (server.AuditVerdict, error) {
	var v server.AuditVerdict
	c, err := f.client()
	if err != nil {
		return v, err
	}
	if pub == nil {
		var k server.AuditPublicKey
		if _, err := c.call(ctx, http.MethodGet, "/v1/audit/key", nil, nil, &k); err != nil {
			return v, err
		}
		pub = k.PublicKey
		fmt.Fprintf(stderr, "Checking checkpoints with the server's own audit signing key %s; pin it with --public-key\n", k.KeyID)
	}
	var cps []store.AuditCheckpoint
	for after := int64(0); ; {
		var page []store.AuditCheckpoint
		if _, err := c.call(ctx, http.MethodGet, "/v1/audit/checkpoints", url.Values{"after": {strconv.FormatInt(after, 10)}}, nil, &page); err != nil {
			return v, err
		}
		cps = append(cps, page...)
		if len(page) < 10000 {
			break
		}
		after = page[len(page)-1].Seq
	}
	check := store.NewAuditChecker(nil, pub, cps)
	v.Checkpoints = len(cps)
	for after := int64(0); ; {
		var es []store.AuditEntry
		q := url.Values{"after": {strconv.FormatInt(after, 10)}, "limit": {strconv.Itoa(auditPage)}}
		if _, err := c.call(ctx, http.MethodGet, "/v1/audit", q, nil, &es); err != nil {
			return v, err
		}
		if seq, why := check.Entries(after, es); seq != 0 {
			v.BrokenSeq, v.Reason = seq, why
			return v, nil
		}
		v.Entries += int64(len(es))
		if len(es) < auditPage {
			break
		}
		after = es[len(es)-1].Seq
	}
	if seq, why := check.Done(); seq != 0 {
		v.BrokenSeq, v.Reason = seq, why
		return v, nil
	}
	var keyed server.AuditVerdict
	if _, err := c.call(ctx, http.MethodGet, "/v1/audit/verify", nil, nil, &keyed); err != nil {
		return v, err
	}
	if !keyed.Verified {
		return keyed, nil
	}
	v.Verified = true
	return v, nil
}

// verifyAuditExport checks an export offline: links, unkeyed hashes and
// the checkpoints, with the public key.
func verifyAuditExport(file string, pub ed25519.PublicKey) (server.AuditVerdict, error) {
	var v server.AuditVerdict
	fh, err := os.Open(file)
	if err != nil {
		return v, usage(err)
	}
	defer fh.Close()
	var es []store.AuditEntry
	var cps []store.AuditCheckpoint
	sc := bufio.NewScanner(fh)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for n := 1; sc.Scan(); n++ {
		if strings.TrimSpace(sc.Text()) == "" {
			continue
		}
		var l auditLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			return v, usage(fmt.Errorf("%s:%d: not an audit export line: %v", file, n, err))
		}
		if l.Checkpoint != nil {
			cps = append(cps, *l.Checkpoint)
			continue
		}
		es = append(es, l.AuditEntry)
	}
	if err := sc.Err(); err != nil {
		return v, usage(fmt.Errorf("%s: %w", file, err))
	}
	// An export may start after an entry: it links from there.
	var after int64
	if len(es) > 0 {
		after = es[0].Seq - 1
	}
	check := store.NewAuditChecker(nil, pub, cps)
	if after > 0 {
		check.StartAfter(after, es[0].PrevHash)
	}
	v.Checkpoints = len(cps)
	if seq, why := check.Entries(after, es); seq != 0 {
		v.BrokenSeq, v.Reason = seq, why
		return v, nil
	}
	if seq, why := check.Done(); seq != 0 {
		v.BrokenSeq, v.Reason = seq, why
		return v, nil
	}
	v.Entries, v.Verified = int64(len(es)), true
	return v, nil
}

func newAuditExportCmd(f *adminFlags) *cobra.Command {
	var after int64
	var follow bool
	var every time.Duration
	c := &cobra.Command{
		Use:   "export [--after SEQ] [--follow]",
		Short: "Write the audit log as JSON lines, with its signed checkpoints, for a SIEM or an offline check",
		Long: `Write the audit log's entries after --after as JSON lines, one entry a line, each
signed checkpoint on a line of its own after the entry it signs
({"checkpoint": {...}}). With --follow, keep polling (every --interval) and
write new entries as they come, until interrupted. 'ringfence audit verify
--file' checks an export offline.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if after < 0 || every < 100*time.Millisecond {
				return usage(errors.New("--after: 0 or more; --interval: 100ms or more"))
			}
			c, err := f.client()
			if err != nil {
				return err
			}
			return exit(exportAudit(cmd.Context(), c, cmd.OutOrStdout(), after, follow, every))
		},
	}
	c.Flags().Int64Var(&after, "after", 0, "start after this sequence number")
	c.Flags().BoolVar(&follow, "follow", false, "keep writing new entries until interrupted")
	c.Flags().DurationVar(&every, "interval", 5*time.Second, "how often --follow asks for new entries")
	return c
}

func exportAudit(ctx context.Context, c *client, w io.Writer, after int64, follow bool, every time.Duration) error {
	enc := json.NewEncoder(w)
	lastCP := after
	for {
		var es []store.AuditEntry
		q := url.Values{"after": {strconv.FormatInt(after, 10)}, "limit": {strconv.Itoa(auditPage)}}
		if _, err := c.call(ctx, http.MethodGet, "/v1/audit", q, nil, &es); err != nil {
			return err
		}
		var cps []store.AuditCheckpoint
		if len(es) > 0 {
			if _, err := c.call(ctx, http.MethodGet, "/v1/audit/checkpoints", url.Values{"after": {strconv.FormatInt(lastCP, 10)}}, nil, &cps); err != nil {
				var ae *apiError
				if !errors.As(err, &ae) || ae.Status != http.StatusNotFound {
					return err
				}
			}
		}
		for _, e := range es {
			if err := enc.Encode(auditLine{AuditEntry: e}); err != nil {
				return err
			}
			for len(cps) > 0 && cps[0].Seq <= e.Seq {
				if cps[0].Seq == e.Seq {
					if err := enc.Encode(auditLine{Checkpoint: &cps[0]}); err != nil {
						return err
					}
					lastCP = e.Seq
				}
				cps = cps[1:]
			}
			after = e.Seq
		}
		if len(es) == auditPage {
			continue
		}
		if !follow {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(every):
		}
	}
}

func newAuditKeyCmd(f *adminFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "key",
		Short: "Print the public key the audit log's checkpoints are signed with, to pin for verify",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var k server.AuditPublicKey
			raw, err := f.call(cmd.Context(), http.MethodGet, "/v1/audit/key", nil, nil, &k)
			if err != nil {
				return err
			}
			return f.show(cmd.OutOrStdout(), raw, func(w io.Writer) {
				fmt.Fprintf(w, "ed25519 %s %s\n", k.KeyID, base64.StdEncoding.EncodeToString(k.PublicKey))
			})
		},
	}
}

// readAuditPublicKey reads what `audit key` prints ("ed25519 ID BASE64"),
// its --json, or the bare base64 key.
func readAuditPublicKey(file string) (ed25519.PublicKey, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("--public-key: %w", err)
	}
	var k server.AuditPublicKey
	if json.Unmarshal(b, &k) == nil && len(k.PublicKey) == ed25519.PublicKeySize {
		return k.PublicKey, nil
	}
	fs := strings.Fields(string(b))
	if len(fs) > 0 {
		if raw, err := base64.StdEncoding.DecodeString(fs[len(fs)-1]); err == nil && len(raw) == ed25519.PublicKeySize {
			return raw, nil
		}
	}
	return nil, fmt.Errorf("--public-key %s: not an audit public key (want the line 'ringfence audit key' prints)", file)
}
