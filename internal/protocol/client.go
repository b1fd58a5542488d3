package protocol

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net/http"
	"time"
)

// HTTPClient talks to a Ringfence server over TLS 1.2 or later, verifying
// its certificate with the CA certificates in caPEM alone, or with the
// system's roots when caPEM is empty. The agent and the CLI use it.
func HTTPClient(caPEM []byte, timeout time.Duration) (*http.Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	if len(caPEM) > 0 {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(caPEM) {
			return nil, errors.New("no PEM certificate in the CA file")
		}
		tr.TLSClientConfig.RootCAs = pool
	}
	return &http.Client{Timeout: timeout, Transport: tr}, nil
}
