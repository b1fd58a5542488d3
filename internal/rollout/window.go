package rollout

import (
	"fmt"
	"strings"
	"time"
)

// Window is a weekly maintenance window in UTC: on the given weekdays,
// from Start to End (minutes after midnight). A window whose end is before
// its start runs past midnight into the next day.
type Window struct {
	Days       [7]bool // indexed by time.Weekday
	Start, End int
}

var dayNames = map[string]time.Weekday{"sun": time.Sunday, "mon": time.Monday, "tue": time.Tuesday, "wed": time.Wednesday,
	"thu": time.Thursday, "fri": time.Friday, "sat": time.Saturday}

// ParseWindow parses "DAYS HH:MM-HH:MM": DAYS is "daily" or a comma list
// of days and day ranges, such as "mon-fri" or "sat,sun".
func ParseWindow(s string) (Window, error) {
	var w Window
	days, span, ok := strings.Cut(strings.TrimSpace(s), " ")
	from, to, ok2 := strings.Cut(span, "-")
	if !ok || !ok2 {
		return w, fmt.Errorf("window %q: want DAYS HH:MM-HH:MM, e.g. mon-fri 01:00-05:00", s)
	}
	for _, part := range strings.Split(days, ",") {
		if part == "daily" {
			w.Days = [7]bool{true, true, true, true, true, true, true}
			continue
		}
		a, b, isRange := strings.Cut(part, "-")
		da, okA := dayNames[a]
		db, okB := dayNames[b]
		if !okA || (isRange && !okB) {
			return w, fmt.Errorf("window %q: unknown day %q (mon..sun, or daily)", s, part)
		}
		if !isRange {
			db = da
		}
		for d := da; ; d = (d + 1) % 7 {
			w.Days[d] = true
			if d == db {
				break
			}
		}
	}
	var err error
	if w.Start, err = minutes(from); err != nil {
		return w, fmt.Errorf("window %q: %v", s, err)
	}
	if w.End, err = minutes(to); err != nil {
		return w, fmt.Errorf("window %q: %v", s, err)
	}
	if w.Start == w.End {
		return w, fmt.Errorf("window %q: starts and ends at the same time", s)
	}
	return w, nil
}

func minutes(hhmm string) (int, error) {
	t, err := time.Parse("15:04", hhmm)
	if err != nil {
		return 0, fmt.Errorf("%q is not HH:MM", hhmm)
	}
	return t.Hour()*60 + t.Minute(), nil
}

// Contains reports whether t (read in UTC) falls inside the window.
func (w Window) Contains(t time.Time) bool {
	t = t.UTC()
	m := t.Hour()*60 + t.Minute()
	if w.Start < w.End {
		return w.Days[t.Weekday()] && m >= w.Start && m < w.End
	}
	// Past midnight: the evening part belongs to today, the morning part
	// to the window that started yesterday.
	if m >= w.Start {
		return w.Days[t.Weekday()]
	}
	return m < w.End && w.Days[(t.Weekday()+6)%7]
}

// InAnyWindow reports whether t is inside one of the windows; no windows
// means any time.
func InAnyWindow(ws []Window, t time.Time) bool {
	if len(ws) == 0 {
		return true
	}
	for _, w := range ws {
		if w.Contains(t) {
			return true
		}
	}
	return false
}
