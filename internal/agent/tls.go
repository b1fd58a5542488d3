package agent

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"time"
)

// CAFile is where enrolment keeps the CA certificates the server was
// verified with (enroll --ca), so that `run` verifies it the same way.
const CAFile = "server-ca.pem"

// HTTPClient talks to the server over TLS 1.2 or later, verifying its
// certificate with the CA certificates in caPEM alone, or with the
// system's roots when caPEM is empty.
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

// ReadCA reads the CA certificates to verify the server with: file when
// given, else the one enrolment kept in dir, else none (system roots).
func ReadCA(file, dir string) ([]byte, error) {
	if file == "" {
		b, err := os.ReadFile(filepath.Join(dir, CAFile))
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return b, err
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("--ca: %w", err)
	}
	return b, nil
}
