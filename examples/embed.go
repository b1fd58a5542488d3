// Package examples embeds the worked examples, so that `ringfence server
// --dev` can publish them and the server has a catalog with no setup.
package examples

import "embed"

// Content holds content/: template types, manifests, bundles and events.
//
//go:embed content
var Content embed.FS
