package notify

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"syscall"
	"time"
)

// Whoever may add a subscription names where the server posts, so
// without a guard a subscriber could make the server reach what only it
// can reach: its loopback services, the cloud's metadata endpoint
// (169.254.169.254), the private network behind it, and learn from the
// delivery log whether something answers there. By default a delivery is
// refused any address that is not public; the check runs on the address
// actually dialled, after name resolution, so a name that resolves (or
// rebinds) to a private address is refused too. An operator whose
// receivers live on the private network allows them explicitly
// (ringfence server --webhook-allow-private).

// PrivateAddressError is a delivery refused for where it would go.
type PrivateAddressError struct{ Addr netip.Addr }

func (e *PrivateAddressError) Error() string {
	return fmt.Sprintf("address %s is not public (loopback, private, link-local or reserved); the server delivers there only with --webhook-allow-private", e.Addr)
}

// Public reports whether a is an address on the public internet: not
// loopback, private (RFC 1918, unique-local), link-local (cloud metadata),
// shared (100.64/10), unspecified, multicast or otherwise reserved.
func Public(a netip.Addr) bool {
	a = a.Unmap()
	if !a.IsValid() || a.IsLoopback() || a.IsPrivate() || a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast() ||
		a.IsInterfaceLocalMulticast() || a.IsMulticast() || a.IsUnspecified() {
		return false
	}
	for _, p := range reserved {
		if p.Contains(a) {
			return false
		}
	}
	return true
}

// reserved are ranges netip does not name that are no receiver's on the
// internet.
var reserved = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),       // this network
	netip.MustParsePrefix("100.64.0.0/10"),   // shared address space (carrier NAT)
	netip.MustParsePrefix("192.0.0.0/24"),    // IETF protocol assignments
	netip.MustParsePrefix("198.18.0.0/15"),   // benchmarking
	netip.MustParsePrefix("240.0.0.0/4"),     // reserved, and broadcast
	netip.MustParsePrefix("64:ff9b:1::/48"),  // local-use NAT64
	netip.MustParsePrefix("2001:db8::/32"),   // documentation
	netip.MustParsePrefix("192.0.2.0/24"),    // documentation
	netip.MustParsePrefix("198.51.100.0/24"), // documentation
	netip.MustParsePrefix("203.0.113.0/24"),  // documentation
}

// NewClient is the client a Sender uses: it follows a redirect only to
// the same scheme, host and port (CheckRedirect), takes no proxy from the
// environment (the guard would see the proxy's address, not the
// receiver's), and, unless allowPrivate, connects only to public
// addresses.
func NewClient(allowPrivate bool) *http.Client {
	d := &net.Dialer{Timeout: Timeout, KeepAlive: 30 * time.Second}
	if !allowPrivate {
		d.Control = func(network, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil {
				return fmt.Errorf("dial %s: %w", address, err)
			}
			if !Public(ap.Addr()) {
				return &PrivateAddressError{Addr: ap.Addr().Unmap()}
			}
			return nil
		}
	}
	t := &http.Transport{
		DialContext:           d.DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          64,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   Timeout,
		ResponseHeaderTimeout: Timeout,
	}
	return &http.Client{Timeout: Timeout, CheckRedirect: CheckRedirect, Transport: t}
}
