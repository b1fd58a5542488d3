package agent

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/ringfence/ringfence/internal/protocol"
)

// CAFile is where enrolment keeps the CA certificates the server was
// verified with (enroll --ca), so that `run` verifies it the same way.
const CAFile = "server-ca.pem"

// HTTPClient is protocol.HTTPClient: the system's roots, or caPEM alone.
func HTTPClient(caPEM []byte, timeout time.Duration) (*http.Client, error) {
	return protocol.HTTPClient(caPEM, timeout)
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
