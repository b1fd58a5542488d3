package content

// Reseal returns a copy of b with the header's body length and checksum
// recomputed, so that tests and fuzz targets can damage a body on purpose
// and still reach the decoder behind the checksum. Bytes too short for a
// header, or without the magic, are returned unchanged.
func Reseal(b []byte) []byte {
	if len(b) < headerLen || !IsCompiled(b) {
		return b
	}
	out := append([]byte(nil), b...)
	seal(out)
	return out
}

// RaceEnabled tells external tests whether the race detector (which
// allocates) is on.
const RaceEnabled = raceEnabled
