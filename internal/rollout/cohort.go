package rollout

import (
	"crypto/sha256"
	"encoding/binary"
)

// Positions is the size of the cohort space: a device's position on a
// channel is in [0, Positions), and wave shares are in the same units
// (basis points), so 10 means 0.1% of devices.
const Positions = 10000

// CohortPosition is a device's stable place on a channel. It depends only
// on the device and channel ids, so it never changes, differs between
// channels (a device is not first in line for everything), and spreads
// devices uniformly.
func CohortPosition(device, channel string) int {
	h := sha256.New()
	h.Write([]byte(device))
	h.Write([]byte{0})
	h.Write([]byte(channel))
	var sum [sha256.Size]byte
	return int(binary.BigEndian.Uint64(h.Sum(sum[:0])[:8]) % Positions)
}
