package cli

import (
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/ringfence/ringfence/internal/server"
	"github.com/ringfence/ringfence/internal/trust"
)

// newSignCmd is a vendor signer's side of the two-person rule: sign what
// awaits the vendor's signatures, where the key is.
func newSignCmd(f *adminFlags) *cobra.Command {
	var keys, expect []string
	var requestFile, out, save string
	var upload bool
	c := &cobra.Command{
		Use:   "sign VENDOR --key FILE [--request FILE] (--out FILE | --upload) [--expect TARGET=SHA256]",
		Short: "Sign what awaits a vendor's signatures (offline if need be)",
		Long: `Sign the next version of a vendor's roles: the targets published since the last
signed version. A target is installable by devices in canary waves once one of
the vendor's keys signed it, and by every device once the vendor's threshold of
keys (default 2) did: a release cannot leave its canary waves before that.

Online, sign fetches the request from the server (--server, --token). For a key
on an offline machine, save the request (--save-request FILE), carry it over,
sign it there (--request FILE --out SIGS), and carry SIGS back to upload it with
"ringfence publish --signatures SIGS". --upload sends the signatures at once.

--expect TARGET=SHA256 (repeatable) refuses to sign unless the request adds
exactly those targets with those hashes: check them against the bundle you
reviewed (ringfence release show, or the publish output).

Exit status: 0 signed (or saved), 1 refused, 2 usage, I/O or key error.`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			vendor := args[0]
			w := cmd.OutOrStdout()
			if save == "" && len(keys) == 0 {
				return usage(errors.New("--key is required (or --save-request FILE to fetch the request for an offline signer)"))
			}
			if save == "" && out == "" && !upload {
				return usage(errors.New("say where the signatures go: --out FILE, or --upload"))
			}
			var privs []ed25519.PrivateKey
			for _, k := range keys {
				p, err := trust.LoadKey(k)
				if err != nil {
					return usage(err)
				}
				privs = append(privs, p)
			}
			want := map[string]string{}
			for _, e := range expect {
				t, h, ok := strings.Cut(e, "=")
				if !ok || t == "" || len(h) != 64 {
					return usage(fmt.Errorf("--expect %q: want TARGET=SHA256 (64 hex digits)", e))
				}
				want[t] = strings.ToLower(h)
			}

			var req trust.Request
			if requestFile != "" {
				b, err := readUpTo(requestFile, 64<<20)
				if err != nil {
					return usage(err)
				}
				if err := json.Unmarshal(b, &req); err != nil {
					return usage(fmt.Errorf("%s: not a signing request: %v", requestFile, err))
				}
				if req.Vendor != vendor {
					return usage(fmt.Errorf("%s is a request for vendor %q, not %q", requestFile, req.Vendor, vendor))
				}
			} else if _, err := f.call(cmd.Context(), http.MethodGet, "/v1/vendors/"+url.PathEscape(vendor)+"/signing-request", nil, nil, &req); err != nil {
				return err
			}
			if len(req.Roles) == 0 {
				fmt.Fprintf(w, "nothing awaits vendor %s's signatures\n", vendor)
				return nil
			}
			if err := describeRequest(w, req); err != nil {
				return rejected(err)
			}
			if save != "" {
				return writeJSONFile(w, save, req, "request saved to %s: sign it with ringfence sign %s --request %s --key FILE --out SIGS\n", save, vendor, save)
			}
			if len(want) > 0 {
				if err := checkExpected(req, want); err != nil {
					return rejected(err)
				}
			}
			n, err := trust.Sign(&req, privs...)
			if err != nil {
				return rejected(err)
			}
			fmt.Fprintf(w, "added %d signature(s)\n", n)
			if out != "" {
				if err := writeJSONFile(w, out, req, "signatures written to %s: upload them with ringfence publish --signatures %s\n", out, out); err != nil {
					return err
				}
			}
			if upload {
				return f.uploadSignatures(cmd, req)
			}
			return nil
		},
	}
	c.Flags().StringSliceVar(&keys, "key", nil, "a private key file of the vendor's (repeatable)")
	c.Flags().StringVar(&requestFile, "request", "", "sign this saved request instead of fetching it")
	c.Flags().StringVar(&out, "out", "", "write the signed request (the signatures) to FILE")
	c.Flags().StringVar(&save, "save-request", "", "only fetch the request and save it to FILE, for an offline signer")
	c.Flags().BoolVar(&upload, "upload", false, "upload the signatures to the server at once")
	c.Flags().StringSliceVar(&expect, "expect", nil, "TARGET=SHA256 the request must add, and nothing else (repeatable)")
	return c
}

// describeRequest prints what a signer is about to sign, and checks that
// what the server says is added is what the metadata holds.
func describeRequest(w io.Writer, req trust.Request) error {
	for _, rr := range req.Roles {
		m, err := new(metadata.Metadata[metadata.TargetsType]).FromBytes(rr.Metadata)
		if err != nil {
			return fmt.Errorf("role %s: the request's metadata: %v", rr.Role, err)
		}
		fmt.Fprintf(w, "role %s version %d: %d of %d signature(s) so far; %d target(s) in all, expires %s\n",
			rr.Role, m.Signed.Version, rr.Signed, rr.Threshold, len(m.Signed.Targets), m.Signed.Expires.Format("2006-01-02"))
		for _, a := range rr.Added {
			tf, ok := m.Signed.Targets[a.Name]
			if !ok || hex.EncodeToString(tf.Hashes["sha256"]) != a.SHA256 || tf.Length != a.Length {
				return fmt.Errorf("role %s: the request says it adds %s (sha256 %s) but its metadata does not hold that: refusing to sign", rr.Role, a.Name, a.SHA256)
			}
			fmt.Fprintf(w, "  adds %s  sha256 %s  %d bytes\n", a.Name, a.SHA256, a.Length)
		}
	}
	return nil
}

// checkExpected refuses a request that adds anything but the expected
// targets (a canary name counts as its target).
func checkExpected(req trust.Request, want map[string]string) error {
	seen := map[string]bool{}
	for _, rr := range req.Roles {
		for _, a := range rr.Added {
			name := strings.Replace(a.Name, "/canary/", "/", 1)
			h, ok := want[name]
			if !ok {
				return fmt.Errorf("role %s adds %s, which you did not --expect: refusing to sign", rr.Role, a.Name)
			}
			if h != a.SHA256 {
				return fmt.Errorf("role %s adds %s with sha256 %s, not the %s you expect: refusing to sign", rr.Role, a.Name, a.SHA256, h)
			}
			seen[name] = true
		}
	}
	for t := range want {
		if !seen[t] {
			return fmt.Errorf("the request does not add %s: refusing to sign", t)
		}
	}
	return nil
}

func writeJSONFile(w io.Writer, file string, v any, done string, args ...any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(file, append(b, '\n'), 0o644); err != nil {
		return usage(err)
	}
	fmt.Fprintf(w, done, args...)
	return nil
}

// uploadSignatures sends signed roles to the server, which publishes each
// role whose threshold is then met.
func (f *adminFlags) uploadSignatures(cmd *cobra.Command, req trust.Request) error {
	var res server.SigningResult
	raw, err := f.call(cmd.Context(), http.MethodPost, "/v1/vendors/"+url.PathEscape(req.Vendor)+"/signatures", nil, req, &res)
	if err != nil {
		return err
	}
	return f.show(cmd.OutOrStdout(), raw, func(w io.Writer) {
		for _, rs := range res.Roles {
			state := fmt.Sprintf("awaiting %d more", rs.Threshold-rs.Signed)
			if rs.Published {
				state = "published"
			}
			fmt.Fprintf(w, "role %s version %d: %d of %d signature(s), %s\n", rs.Role, rs.Version, rs.Signed, rs.Threshold, state)
		}
	})
}
