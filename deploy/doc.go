// Package deploy holds the files Ringfence is deployed with (the systemd
// units, compose.yaml, HAProxy's configuration, Prometheus rules) and the
// tests that check them; the Dockerfile is at the repository's root.
package deploy
