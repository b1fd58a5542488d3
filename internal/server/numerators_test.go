package server_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/ringfence/ringfence/internal/server"
	"github.com/ringfence/ringfence/internal/store"
	"pgregory.net/rapid"
)

// numerators are the per-release counts the gates divide: each counts a
// device at most once, whatever it sends.
var numerators = [][]string{
	{"applied"}, {"apply-failed"}, {"reverted"}, {"healthy"}, {"worker-crash"},
	{"unclean-reboot"}, {"boot-loop"},
}

// Random event sequences from many devices — those of the wave and
// others, offered the release or not, replaying, repeating, claiming
// versions they do not run, crashing in loops — never make a gate's
// numerator exceed the devices offered the release, nor a control
// numerator the devices of the fleet.
func TestGateNumeratorsNeverExceedTheDevicesOffered(t *testing.T) {
	e := newEnv(t, "")
	f := standardFleet(t, e)
	rel := e.startRelease(t, quickPlan(), "normal")
	f.until(t, 4, "in the canary wave", func(st server.ReleaseStatus) bool { return st.Release.WaveName == "canary" }, rel.ID)
	f.tick(t)
	type sender struct {
		cred, agent, osBuild string
		seq                  uint64
	}
	var devs []*sender
	for _, d := range f.devs {
		devs = append(devs, &sender{cred: d.cred, agent: d.agent, osBuild: d.osBuild, seq: d.seq})
	}
	for range 4 { // contoso's: never offered 293
		d := e.enroll(t, "7.12.0")
		devs = append(devs, &sender{cred: d.cred, agent: d.agent, osBuild: "22631"})
	}
	types := []string{"applied", "apply-failed", "reverted", "healthy", "worker-crash", "unclean-reboot", "boot-loop", "actions"}
	offered := func() int64 {
		t.Helper()
		ss, err := e.st.SilenceStats(context.Background(), store.SilenceQuery{Release: rel.ID, OverdueBefore: e.clock.Now()})
		if err != nil {
			t.Fatal(err)
		}
		var n int64
		for _, s := range ss {
			n += s.Offered
		}
		return n
	}

	rapid.Check(t, func(rt *rapid.T) {
		for range rapid.IntRange(1, 12).Draw(rt, "checkins") {
			d := devs[rapid.IntRange(0, len(devs)-1).Draw(rt, "device")]
			active := rapid.SampledFrom([]uint64{292, 293}).Draw(rt, "active")
			var evs []server.EventReport
			// Sequence numbers go forward, or a check-in replays stored
			// ones first.
			seq := d.seq
			if d.seq > 0 && rapid.IntRange(0, 4).Draw(rt, "replay") == 0 {
				seq = uint64(rapid.IntRange(0, int(d.seq)-1).Draw(rt, "from"))
			}
			for range rapid.IntRange(0, 40).Draw(rt, "events") {
				seq++
				d.seq = max(d.seq, seq)
				ev := server.EventReport{Seq: seq, Type: rapid.SampledFrom(types).Draw(rt, "type"), Channel: "acme/ipc",
					Version: rapid.SampledFrom([]uint64{291, 292, 293, 294}).Draw(rt, "version")}
				if ev.Type == "actions" {
					ev.Counts = map[string]int64{"alert": rapid.Int64Range(0, 50000).Draw(rt, "alerts")}
				}
				evs = append(evs, ev)
			}
			req := server.CheckinRequest{Platform: "windows", OSBuild: d.osBuild, AgentVersion: d.agent, Events: evs,
				Channels: []server.ChannelReport{{Channel: "acme/ipc", ActiveVersion: active, LKGVersion: 292, State: "probation"}}}
			switch code, body := e.call(t, "POST", "/v1/checkin", d.cred, req); code {
			case http.StatusOK, http.StatusTooManyRequests:
			default:
				rt.Fatalf("check-in: %d %s", code, body)
			}
			e.clock.Advance(time.Duration(rapid.IntRange(0, 90).Draw(rt, "seconds")) * time.Second)
		}
		e.srv.Drain()
		figs := e.figures(t, e.creds.AdminToken, rel.ID)
		n := offered()
		for _, ms := range numerators {
			var got, control int64
			for _, m := range ms {
				got += figs.sum(m)
				control += figs.sum("control-" + m)
			}
			if got > n {
				rt.Fatalf("%v: %d, more than the %d devices offered the release", ms, got, n)
			}
			if control > int64(len(devs)) {
				rt.Fatalf("control %v: %d, more than the %d devices of the fleet", ms, control, len(devs))
			}
		}
		if testing.Verbose() {
			rt.Log(fmt.Sprintf("offered %d: %v", n, figs))
		}
	})
}
