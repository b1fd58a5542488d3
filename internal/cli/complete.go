package cli

import (
	"net/http"
	"strings"

	"github.com/spf13/cobra"
)

// Shell completion of what lives on the server: release ids and channels,
// asked of the API with the token and server the command would use. A
// completion that cannot reach the server offers nothing rather than an
// error: the shell prints completions, not messages.

// completeReleases offers the ids of the releases the token sees.
func (f *adminFlags) completeReleases(cmd *cobra.Command, args []string, prefix string) ([]cobra.Completion, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	var rs []struct {
		ID      string `json:"id"`
		Channel string `json:"channel"`
		State   string `json:"state"`
	}
	if _, err := f.call(cmd.Context(), http.MethodGet, "/v1/releases", nil, nil, &rs); err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	var out []cobra.Completion
	for _, r := range rs {
		if strings.HasPrefix(r.ID, prefix) {
			out = append(out, cobra.CompletionWithDesc(r.ID, r.Channel+" "+r.State))
		}
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}

// completeChannels offers the channels the token sees.
func (f *adminFlags) completeChannels(cmd *cobra.Command, prefix string) ([]cobra.Completion, cobra.ShellCompDirective) {
	var cs []struct {
		ID   string `json:"id"`
		Kind string `json:"kind"`
	}
	if _, err := f.call(cmd.Context(), http.MethodGet, "/v1/channels", nil, nil, &cs); err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	var out []cobra.Completion
	for _, c := range cs {
		if strings.HasPrefix(c.ID, prefix) {
			out = append(out, cobra.CompletionWithDesc(c.ID, c.Kind))
		}
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}
