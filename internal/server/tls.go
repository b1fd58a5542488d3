package server

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"sync/atomic"
	"time"
)

// CertFiles serves a certificate and key from files and loads them again
// on Reload (the CLI calls it on SIGHUP), so a renewed certificate is
// served without a restart. A reload that fails keeps the certificate in
// use: a half-written file never takes the server off the air.
type CertFiles struct {
	cert, key string
	cur       atomic.Pointer[tls.Certificate]
}

// LoadCertFiles reads a PEM certificate chain and its private key.
func LoadCertFiles(certFile, keyFile string) (*CertFiles, error) {
	c := &CertFiles{cert: certFile, key: keyFile}
	if err := c.Reload(); err != nil {
		return nil, err
	}
	return c, nil
}

// Reload reads the files again; on error the previous certificate stays.
func (c *CertFiles) Reload() error {
	pair, err := tls.LoadX509KeyPair(c.cert, c.key)
	if err != nil {
		return fmt.Errorf("TLS certificate %s and key %s: %w", c.cert, c.key, err)
	}
	if pair.Leaf == nil {
		if pair.Leaf, err = x509.ParseCertificate(pair.Certificate[0]); err != nil {
			return fmt.Errorf("TLS certificate %s: %w", c.cert, err)
		}
	}
	c.cur.Store(&pair)
	return nil
}

// NotAfter is when the certificate in use expires.
func (c *CertFiles) NotAfter() time.Time { return c.cur.Load().Leaf.NotAfter }

// TLSConfig serves the current certificate, TLS 1.2 or later.
func (c *CertFiles) TLSConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return c.cur.Load(), nil
		},
	}
}
