// Package deploy holds the files Ringfence is deployed with (the systemd
// units, compose.yaml, HAProxy's configuration, Prometheus rules) and the
// tests that check them; the Dockerfile is at the repository's root. It
// is a Go module of its own: the tests' libraries (BuildKit, compose-go)
// must not raise the versions the server and the agent are built with.
package deploy
