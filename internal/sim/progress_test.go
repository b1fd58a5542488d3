package sim

import (
	"bytes"
	"strings"
	"testing"
)

// Progress into a log (not a terminal) is plain lines, one per tenth of
// the run, with no carriage return.
func TestProgressInALogIsPlainLines(t *testing.T) {
	var b bytes.Buffer
	p := newProgress(&b)
	for pct := 0; pct <= 100; pct++ {
		p.at(pct, "run "+strings.Repeat("=", pct/10))
	}
	p.done()
	out := b.String()
	if strings.Contains(out, "\r") {
		t.Errorf("progress into a log holds a carriage return: %q", out)
	}
	if n := strings.Count(out, "\n"); n != 11 {
		t.Errorf("progress into a log: %d lines, want 11 (0%%, 10%%, ... 100%%):\n%s", n, out)
	}
	var none *progressLine // no progress asked for
	none.at(50, "nothing")
	none.done()
}
