package cli

import (
	"cmp"
	"debug/buildinfo"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ringfence/ringfence/internal/agentbuild"
	"github.com/ringfence/ringfence/internal/content"
	"github.com/ringfence/ringfence/internal/server"
	"github.com/ringfence/ringfence/internal/trust"
)

// warningText extracts the text of a `299 agent "text"` Warning header.
func warningText(h string) string {
	if i := strings.IndexByte(h, '"'); i >= 0 {
		if s, err := strconv.Unquote(h[i:]); err == nil {
			return s
		}
	}
	return h
}

// --- publish ---

func newPublishCmd(f *adminFlags) *cobra.Command {
	var channel, types, manifests, sigs string
	var b buildFlags
	c := &cobra.Command{
		Use:   "publish [BUNDLE] [--channel VENDOR/NAME] [--types DIR --manifests DIR] [--signatures FILE]\n  ringfence publish --build EXECUTABLE --channel VENDOR/NAME --version N",
		Short: "Publish a bundle source or an agent build to its channel, or upload a vendor's signatures",
		Long: `Publish a bundle (YAML or JSON source, at most 8 MiB) to a channel: the bundle's
own vendor/channel unless --channel says otherwise. The server validates it
against every targeted agent's capability manifest and the channel's current
version, and stores the compiled artifact. With --types and --manifests the
bundle is first validated here, and not sent if it is rejected.

With --build, publish a ringfence-agent executable to an agent channel as
version N, with the ringfence-agent-worker next to it (or --worker): its
platform, architecture and agent version are read from the executable (Go's build information: GOOS, GOARCH and the -X setting of
agent.Version) unless --platform, --arch or --agent-version say otherwise,
and sent in the signed envelope agents verify before they update themselves
(docs/agent.md, "Updating itself").

With a signed-update repository the artifact then awaits its vendor's
signatures: "ringfence sign" makes them, "publish --signatures FILE" uploads
them (with or without a bundle).

Exit status: 0 published, 1 rejected (findings are printed, one per line) or
refused, 2 usage, I/O error, unreachable server or bad token.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if b.path != "" {
				if len(args) > 0 || types != "" || manifests != "" {
					return usage(errors.New("--build publishes an agent build alone: no BUNDLE, --types or --manifests with it"))
				}
				if err := f.publishBuild(cmd, b, channel); err != nil {
					return err
				}
			} else if len(args) == 0 && sigs == "" {
				return usage(errors.New("give a BUNDLE to publish, --build EXECUTABLE, --signatures FILE to upload, or both"))
			}
			if len(args) == 1 {
				if err := f.publish(cmd, args[0], channel, types, manifests); err != nil {
					return err
				}
			}
			if sigs == "" {
				return nil
			}
			b, err := readUpTo(sigs, 64<<20)
			if err != nil {
				return usage(err)
			}
			var req trust.Request
			if err := json.Unmarshal(b, &req); err != nil || req.Vendor == "" {
				return usage(fmt.Errorf("%s: not signatures made by ringfence sign (%v)", sigs, err))
			}
			return f.uploadSignatures(cmd, req)
		},
	}
	c.Flags().StringVar(&channel, "channel", "", "publish to VENDOR/NAME (default: the bundle's vendor/channel)")
	c.Flags().StringVar(&types, "types", "", "validate locally first: directory of template types")
	c.Flags().StringVar(&manifests, "manifests", "", "validate locally first: directory of capability manifests")
	c.Flags().StringVar(&sigs, "signatures", "", "upload signatures made by ringfence sign")
	_ = c.RegisterFlagCompletionFunc("channel", func(cmd *cobra.Command, args []string, prefix string) ([]cobra.Completion, cobra.ShellCompDirective) {
		return f.completeChannels(cmd, prefix)
	})
	c.Flags().StringVar(&b.path, "build", "", "publish this ringfence-agent executable to an agent channel (with --channel and --version)")
	c.Flags().StringVar(&b.worker, "worker", "", "--build: the ringfence-agent-worker executable shipped with it (default: the one next to --build's, if any)")
	c.Flags().Uint64Var(&b.version, "version", 0, "--build: the channel version, above its current one")
	c.Flags().StringVar(&b.h.Platform, "platform", "", "--build: the build's platform (default: read from the executable)")
	c.Flags().StringVar(&b.h.Arch, "arch", "", "--build: the build's architecture (default: read from the executable)")
	c.Flags().StringVar(&b.h.AgentVersion, "agent-version", "", "--build: the agent version it reports (default: read from the executable)")
	return c
}

type buildFlags struct {
	path, worker string
	version      uint64
	h            agentbuild.Header
}

// agentVersionFlag is the linker setting release builds name their agent
// version with.
const agentVersionFlag = "github.com/ringfence/ringfence/internal/agent.Version="

// publishBuild packs an agent executable in its envelope and publishes it.
func (f *adminFlags) publishBuild(cmd *cobra.Command, b buildFlags, channel string) error {
	if channel == "" || b.version == 0 {
		return usage(errors.New("--build needs --channel VENDOR/NAME (an agent channel) and --version N"))
	}
	vendor, name, err := splitChannel("--channel", channel)
	if err != nil {
		return err
	}
	exe, err := readUpTo(b.path, 64<<20)
	if err != nil {
		return usage(err)
	}
	// The worker ships with the agent: the one named, else the one next
	// to the executable, if any.
	var worker []byte
	if b.worker == "" {
		if w := filepath.Join(filepath.Dir(b.path), "ringfence-agent-worker"+filepath.Ext(b.path)); fileExists(w) {
			b.worker = w
		}
	}
	if b.worker != "" {
		if worker, err = readUpTo(b.worker, 64<<20); err != nil {
			return usage(err)
		}
	}
	h := b.h
	if info, err := buildinfo.ReadFile(b.path); err == nil {
		for _, s := range info.Settings {
			switch s.Key {
			case "GOOS":
				h.Platform = cmp.Or(h.Platform, s.Value)
			case "GOARCH":
				h.Arch = cmp.Or(h.Arch, s.Value)
			case "-ldflags":
				if _, v, ok := strings.Cut(s.Value, agentVersionFlag); ok && h.AgentVersion == "" {
					h.AgentVersion, _, _ = strings.Cut(strings.Trim(v, `"'`), " ")
					h.AgentVersion = strings.Trim(h.AgentVersion, `"'`)
				}
			}
		}
	}
	if h.Platform == "" || h.Arch == "" || h.AgentVersion == "" {
		return usage(fmt.Errorf("%s: cannot tell its platform, arch and agent version (read %q, %q, %q): give --platform, --arch and --agent-version", b.path, h.Platform, h.Arch, h.AgentVersion))
	}
	packed, err := agentbuild.Pack(h, exe, worker)
	if err != nil {
		return usage(fmt.Errorf("%s: %w", b.path, err))
	}
	c, err := f.client()
	if err != nil {
		return err
	}
	apiPath := "/v1/channels/" + url.PathEscape(vendor) + "/" + url.PathEscape(name) + "/publish"
	body, _, err := c.do(cmd.Context(), http.MethodPost, apiPath, url.Values{"version": {strconv.FormatUint(b.version, 10)}}, packed, "application/octet-stream")
	if err != nil {
		return exit(err)
	}
	var res server.PublishResult
	if err := json.Unmarshal(body, &res); err != nil {
		return usage(fmt.Errorf("POST %s: unexpected response from the server: %v", apiPath, err))
	}
	return f.show(cmd.OutOrStdout(), body, func(w io.Writer) {
		with := "without its worker"
		if b.worker != "" {
			with = "with its worker " + b.worker
		}
		fmt.Fprintf(w, "PUBLISHED %s (%s@%d): agent %s for %s/%s, %s\n", b.path, res.Channel, res.Version, h.AgentVersion, h.Platform, h.Arch, with)
		printPublished(w, res)
	})
}

func (f *adminFlags) publish(cmd *cobra.Command, path, channel, types, manifests string) error {
	w := cmd.OutOrStdout()
	if (types == "") != (manifests == "") {
		return usage(errors.New("--types and --manifests go together: give both to validate locally, or neither"))
	}
	vendor, name := "", ""
	if channel != "" {
		var err error
		if vendor, name, err = splitChannel("--channel", channel); err != nil {
			return err
		}
	}
	raw, err := readUpTo(path, content.MaxSourceSize+1)
	if err != nil {
		return usage(err)
	}
	if len(raw) > content.MaxSourceSize {
		return rejected(fmt.Errorf("%s: file is larger than the %d MiB limit for content sources: %v", path, content.MaxSourceSize>>20, content.ErrTooLarge))
	}
	if content.IsCompiled(raw) {
		return rejected(fmt.Errorf("%s is a compiled bundle: publish its source (YAML or JSON); the server compiles and hashes it", path))
	}
	b, err := content.ParseBundle(path, raw)
	if err != nil {
		r, err := sourceReport(path, err)
		if err != nil {
			return err
		}
		return writeReports(w, f.json, []*bundleReport{r})
	}
	if channel == "" {
		vendor, name = b.Vendor, b.Channel
	}
	if types != "" {
		cat, err := content.LoadCatalog(types, manifests)
		if err != nil {
			return classify(err)
		}
		if v := cat.Validate(b, 0); !v.Accepted() {
			r := &bundleReport{File: path, Bundle: b.Name(), Findings: v.Findings}
			for _, m := range v.Targeted {
				r.Targeted = append(r.Targeted, m.Agent())
			}
			fmt.Fprintln(cmd.ErrOrStderr(), "ringfence: rejected by local validation; not sent to the server")
			return writeReports(w, f.json, []*bundleReport{r})
		}
	}

	c, err := f.client()
	if err != nil {
		return err
	}
	contentType := "application/yaml"
	if t := strings.TrimSpace(string(raw[:min(len(raw), 64)])); strings.HasPrefix(t, "{") {
		contentType = "application/json"
	}
	apiPath := "/v1/channels/" + url.PathEscape(vendor) + "/" + url.PathEscape(name) + "/publish"
	body, _, err := c.do(cmd.Context(), http.MethodPost, apiPath, nil, raw, contentType)
	var ae *apiError
	if errors.As(err, &ae) && ae.Status == http.StatusUnprocessableEntity && len(ae.Findings) > 0 {
		if f.json {
			if err := writeRawJSON(w, ae.body); err != nil {
				return err
			}
		} else {
			fmt.Fprintf(w, "REJECTED %s (%s) by the server at %s\n", path, b.Name(), c.base)
			printFindings(w, path, localFindings(ae.Findings, path))
		}
		return rejected(fmt.Errorf("bundle rejected: %s: %s", b.Name(), plural(ae.Findings.Errors(), "error")))
	}
	if err != nil {
		return exit(err)
	}
	var res server.PublishResult
	if err := json.Unmarshal(body, &res); err != nil {
		return usage(fmt.Errorf("POST %s: unexpected response from the server: %v", apiPath, err))
	}
	return f.show(w, body, func(w io.Writer) {
		fmt.Fprintf(w, "PUBLISHED %s (%s@%d)\n", path, res.Channel, res.Version)
		printPublished(w, res)
		printFindings(w, path, localFindings(res.Findings, path))
	})
}

// printPublished prints what the server stored and how far it is signed.
func printPublished(w io.Writer, res server.PublishResult) {
	fields(w, "  channel", res.Channel, "  version", strconv.FormatUint(res.Version, 10), "  sha256", res.SHA256, "  size", fmt.Sprintf("%d bytes", res.Size))
	switch res.Signing {
	case "production":
		fields(w, "  signing", "signed by the vendor's threshold: every device can verify it")
	case "canary", "unsigned":
		fields(w, "  signing", res.Signing+": "+res.SigningNote)
		vendor, _, _ := strings.Cut(res.Channel, "/")
		fmt.Fprintf(w, "  next: ringfence sign %s --key FILE --expect %s=%s --out SIGS; ringfence publish --signatures SIGS\n",
			vendor, res.Target, res.SHA256)
	}
}

// printFindings prints one finding per line, as content validate does.
func printFindings(w io.Writer, path string, fs content.Findings) {
	for _, f := range fs {
		fmt.Fprintf(w, "  %s: %s [%s]: %s\n", cmp.Or(f.Location, path), f.Level, f.Rule, f)
	}
}

// localFindings points the server's findings, located in its "bundle"
// pseudo-file, at the file the operator published.
func localFindings(fs content.Findings, path string) content.Findings {
	out := make(content.Findings, len(fs))
	for i, f := range fs {
		switch {
		case f.Location == "bundle":
			f.Location = path
		case strings.HasPrefix(f.Location, "bundle:"):
			f.Location = path + strings.TrimPrefix(f.Location, "bundle")
		}
		out[i] = f
	}
	return out
}

// --- releases ---

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}
