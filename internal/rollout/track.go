package rollout

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// TrackKind is an organisation's choice for a channel.
type TrackKind string

const (
	TrackEarly   TrackKind = "early"    // takes part in the waves
	TrackGA      TrackKind = "ga"       // gets a release once its last gate passed
	TrackGADelay TrackKind = "ga-delay" // H hours after that
	TrackPinned  TrackKind = "pinned"   // exactly one version
	TrackPaused  TrackKind = "paused"   // nothing new (unless the channel is unpausable)
)

// Track is a parsed track: "early", "ga", "ga-delay:24", "pinned:292",
// "paused".
type Track struct {
	Kind    TrackKind
	Delay   time.Duration // ga-delay
	Version uint64        // pinned
}

// MaxGADelay bounds ga-delay.
const MaxGADelay = 72

// ParseTrack parses a track as written in a policy.
func ParseTrack(s string) (Track, error) {
	kind, arg, hasArg := strings.Cut(s, ":")
	switch TrackKind(kind) {
	case TrackEarly, TrackGA, TrackPaused:
		if hasArg {
			return Track{}, fmt.Errorf("track %q takes no argument", s)
		}
		return Track{Kind: TrackKind(kind)}, nil
	case TrackGADelay:
		h, err := strconv.Atoi(arg)
		if err != nil || h < 0 || h > MaxGADelay {
			return Track{}, fmt.Errorf("track %q: want ga-delay:HOURS with HOURS from 0 to %d", s, MaxGADelay)
		}
		return Track{Kind: TrackGADelay, Delay: time.Duration(h) * time.Hour}, nil
	case TrackPinned:
		v, err := strconv.ParseUint(arg, 10, 63)
		if err != nil || v == 0 {
			return Track{}, fmt.Errorf("track %q: want pinned:VERSION with a version from 1", s)
		}
		return Track{Kind: TrackPinned, Version: v}, nil
	}
	return Track{}, fmt.Errorf("unknown track %q (want early, ga, ga-delay:HOURS, pinned:VERSION or paused)", s)
}

func (t Track) String() string {
	switch t.Kind {
	case TrackGADelay:
		return fmt.Sprintf("ga-delay:%d", int(t.Delay/time.Hour))
	case TrackPinned:
		return fmt.Sprintf("pinned:%d", t.Version)
	}
	return string(t.Kind)
}

// DefaultTrack applies where an organisation set no policy.
var DefaultTrack = Track{Kind: TrackGA}
