package server_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/ringfence/ringfence/internal/server"
)

// The attacks of issue 14 on the gates' inputs, each with a device and
// nothing else: a device of another organisation, never offered the
// release, forges its reverts, crashes and confirmations; a device that
// was offered it repeats its confirmation. The gates count devices the
// release was offered to, each once; a flood of crashes from an offered
// device is one crashed device.
func TestForgedTestimonyMovesNoGate(t *testing.T) {
	forEachStore(t, func(t *testing.T, e *env) {
		f := standardFleet(t, e)
		rel := e.startRelease(t, quickPlan(), "normal")
		f.until(t, 4, "in the canary wave", func(st server.ReleaseStatus) bool { return st.Release.WaveName == "canary" }, rel.ID)
		f.tick(t)
		before := e.figures(t, e.creds.AdminToken, rel.ID)

		// contoso follows the general track: its device is not offered 293.
		x := e.enroll(t, "7.12.0")
		e.offered(t, x, 292)
		var seq uint64
		var stored, refused int // events; check-ins over the device's quota
		forge := func(typ string, n int, version uint64) {
			for n > 0 {
				var evs []server.EventReport
				for ; n > 0 && len(evs) < 1000; n-- {
					seq++
					evs = append(evs, server.EventReport{Seq: seq, Type: typ, Channel: "acme/ipc", Version: version})
				}
				switch code, body := e.call(t, "POST", "/v1/checkin", x.cred, x.report(292, evs...)); code {
				case http.StatusOK:
					stored += len(evs)
				case http.StatusTooManyRequests:
					refused++
					seq -= uint64(len(evs)) // never stored: the agent sends them again
				default:
					t.Fatalf("check-in: %d %s", code, body)
				}
			}
		}
		forge("applied", 1, 293)
		forge("reverted", 1, 293)
		forge("healthy", 25, 293)
		// 10,000 crash events are over its quota of events: none is stored.
		forge("worker-crash", 10000, 293)
		// It also crashes as control, on a version it does not run.
		forge("unclean-reboot", 1, 291)
		if stored != 28 || refused != 10 {
			t.Errorf("%d forged events stored, %d check-ins refused; want 28 stored and the 10 of 1,000 crash events refused", stored, refused)
		}

		// A device of the wave, offered 293, confirms it healthy 50 times.
		twice := f.runningCanary(t)
		var evs []server.EventReport
		for range 50 {
			twice.seq++
			evs = append(evs, server.EventReport{Seq: twice.seq, Type: "healthy", Channel: "acme/ipc", Version: 293})
		}
		// and then crashes and reboots uncleanly 300 times (its quota
		// stores them all), with a boot loop.
		for i := range 300 {
			twice.seq++
			typ := []string{"worker-crash", "unclean-reboot", "boot-loop"}[i%3]
			evs = append(evs, server.EventReport{Seq: twice.seq, Type: typ, Channel: "acme/ipc", Version: 293, Reason: "exit 3"})
		}
		req := server.CheckinRequest{Platform: "windows", OSBuild: twice.osBuild, AgentVersion: twice.agent, Events: evs,
			Channels: []server.ChannelReport{{Channel: "acme/ipc", ActiveVersion: 293, LKGVersion: twice.lkg, State: "probation"}}}
		e.must(t, http.StatusOK, "POST", "/v1/checkin", twice.cred, req, nil)
		e.srv.Drain()

		after := e.figures(t, e.creds.AdminToken, rel.ID)
		for _, m := range []string{"applied", "reverted", "control-unclean-reboot"} {
			if after.sum(m) != before.sum(m) {
				t.Errorf("%s: %d before the forgeries, %d after", m, before.sum(m), after.sum(m))
			}
		}
		if got := after.sum("healthy") - before.sum("healthy"); got != 1 {
			t.Errorf("healthy grew by %d: 50 confirmations of one offered device are one device", got)
		}
		if got := after.sum("worker-crash") - before.sum("worker-crash"); got != 1 {
			t.Errorf("worker-crash grew by %d: 100 crashes of one offered device are one crashed device", got)
		}
		for _, m := range []string{"unclean-reboot", "boot-loop"} {
			if got := after.sum(m) - before.sum(m); got != 1 {
				t.Errorf("%s grew by %d: 100 of one offered device are one device", m, got)
			}
		}
		var dev server.DeviceInfo
		e.must(t, http.StatusOK, "GET", "/v1/devices/"+x.id, e.creds.AdminToken, nil, &dev)
		if dev.Anomalies != int64(stored) {
			t.Errorf("the forger's anomalies: %d, want one per forged event stored (%d)", dev.Anomalies, stored)
		}
		e.must(t, http.StatusOK, "GET", "/v1/devices/"+twice.id, e.creds.AdminToken, nil, &dev)
		if dev.Anomalies != 0 {
			t.Errorf("the offered device's anomalies: %d, want 0 (its confirmation is believed, once)", dev.Anomalies)
		}
		if st := e.status(t, rel.ID); st.Release.State == "halted" {
			t.Errorf("halted by forged telemetry: %s", st.Summary)
		}
	})
}

// A completed release counts a device that runs it, offered or not (a
// rollback sends devices back to it without an offer), and not one that
// runs something else.
func TestCompletedReleaseCountsDevicesThatRunIt(t *testing.T) {
	forEachStore(t, func(t *testing.T, e *env) {
		var rel struct {
			State string `json:"state"`
		}
		e.must(t, http.StatusOK, "GET", "/v1/releases/"+seedRelease, e.creds.AdminToken, nil, &rel)
		if rel.State != "completed" {
			t.Fatalf("the seed release is %s, want completed", rel.State)
		}
		runs, other := e.enroll(t, "7.12.0"), e.enroll(t, "7.12.0")
		applied := server.EventReport{Seq: 1, Type: "applied", Channel: "acme/ipc", Version: 292}
		e.checkin(t, runs, runs.report(292, applied))
		e.checkin(t, other, other.report(291, applied))
		e.srv.Drain()
		if got := e.figures(t, e.creds.AdminToken, seedRelease).sum("applied"); got != 1 {
			t.Errorf("applied: %d, want 1 (the device running 292)", got)
		}
		for d, want := range map[*device]int64{runs: 0, other: 1} {
			var dev server.DeviceInfo
			e.must(t, http.StatusOK, "GET", "/v1/devices/"+d.id, e.creds.AdminToken, nil, &dev)
			if dev.Anomalies != want {
				t.Errorf("device %s: %d anomalies, want %d", d.id, dev.Anomalies, want)
			}
		}
	})
}

// A device's time on a version counts as a release's exposure only if it
// was offered the release: a device that claims to run 293 without having
// been offered it adds no device-hours to dilute 293's crash rates, and
// one that was offered it adds one heartbeat a window.
func TestHeartbeatsCountOnlyForOfferedDevices(t *testing.T) {
	forEachStore(t, func(t *testing.T, e *env) {
		f := standardFleet(t, e)
		rel := e.startRelease(t, quickPlan(), "normal")
		f.until(t, 4, "in the canary wave", func(st server.ReleaseStatus) bool { return st.Release.WaveName == "canary" }, rel.ID)
		f.tick(t)
		offered := f.runningCanary(t)
		claims := e.enroll(t, "7.12.0") // contoso: never offered 293
		e.offered(t, claims, 292)
		e.srv.Drain()
		before := e.figures(t, e.creds.AdminToken, rel.ID)
		for range 5 {
			e.clock.Advance(time.Minute)
			e.checkin(t, claims, claims.report(293))
		}
		e.srv.Drain()
		mid := e.figures(t, e.creds.AdminToken, rel.ID)
		if got := mid.sum("heartbeat") - before.sum("heartbeat"); got != 0 {
			t.Errorf("a device never offered 293 that claims it added %d heartbeats to 293's exposure, want 0", got)
		}
		for range 5 {
			e.clock.Advance(time.Minute)
			req := server.CheckinRequest{Platform: "windows", OSBuild: offered.osBuild, AgentVersion: offered.agent,
				Channels: []server.ChannelReport{{Channel: "acme/ipc", ActiveVersion: 293, LKGVersion: offered.lkg, State: "probation"}}}
			e.must(t, http.StatusOK, "POST", "/v1/checkin", offered.cred, req, nil)
		}
		e.srv.Drain()
		after := e.figures(t, e.creds.AdminToken, rel.ID)
		if got := after.sum("heartbeat") - mid.sum("heartbeat"); got != 5 {
			t.Errorf("a device offered 293 added %d heartbeats in 5 windows, want 5", got)
		}
	})
}

// runningCanary is a device of the fleet that runs 293.
func (f *fleet) runningCanary(t *testing.T) *fleetDevice {
	t.Helper()
	for _, d := range f.devs {
		if d.active == 293 {
			return d
		}
	}
	t.Fatal("no device of the canary wave runs 293")
	return nil
}

// 10,000 crash events from one device of the wave — over the event quota
// here, so the quota is off — are one crashed device.
func TestTenThousandCrashesOfOneDeviceAreOneCrashedDevice(t *testing.T) {
	forEachStoreConfig(t, server.Config{ControllerTick: 24 * time.Hour, EventsPerHour: -1}, func(t *testing.T, e *env) {
		f := standardFleet(t, e)
		rel := e.startRelease(t, quickPlan(), "normal")
		f.until(t, 4, "in the canary wave", func(st server.ReleaseStatus) bool { return st.Release.WaveName == "canary" }, rel.ID)
		f.tick(t)
		d := f.runningCanary(t)
		before := e.figures(t, e.creds.AdminToken, rel.ID).sum("worker-crash")
		for range 10 {
			var evs []server.EventReport
			for range 1000 {
				d.seq++
				evs = append(evs, server.EventReport{Seq: d.seq, Type: "worker-crash", Channel: "acme/ipc", Version: 293, Reason: "exit 3"})
			}
			req := server.CheckinRequest{Platform: "windows", OSBuild: d.osBuild, AgentVersion: d.agent, Events: evs,
				Channels: []server.ChannelReport{{Channel: "acme/ipc", ActiveVersion: 293, LKGVersion: d.lkg, State: "probation"}}}
			e.must(t, http.StatusOK, "POST", "/v1/checkin", d.cred, req, nil)
		}
		e.srv.Drain()
		if got := e.figures(t, e.creds.AdminToken, rel.ID).sum("worker-crash") - before; got != 1 {
			t.Errorf("10,000 crash events of one device counted %d, want 1 crashed device", got)
		}
	})
}

// A boot loop is three unclean reboots of one host, counted the same way
// for the release and for its control group: the agent's own boot-loop
// event is said only of content on probation, so counting it would give
// the gate a control group that can never show one. A treated host that
// reboots three times is one boot loop however often it goes on; a
// control host that does the same is one for the control group; two
// reboots are none; the agent's event alone is none.
func TestBootLoopsAreCountedAlikeForReleaseAndControl(t *testing.T) {
	forEachStore(t, func(t *testing.T, e *env) {
		f := standardFleet(t, e)
		rel := e.startRelease(t, quickPlan(), "normal")
		f.until(t, 4, "in the canary wave", func(st server.ReleaseStatus) bool { return st.Release.WaveName == "canary" }, rel.ID)
		f.tick(t)
		before := e.figures(t, e.creds.AdminToken, rel.ID)

		treated := f.runningCanary(t)
		var control *fleetDevice
		for _, d := range f.devs {
			if d.active == 292 && !d.offered && d.osBuild == treated.osBuild {
				control = d
				break
			}
		}
		if control == nil {
			t.Fatal("no control device beside the canary")
		}
		report := func(d *fleetDevice, state string, types ...string) {
			t.Helper()
			var evs []server.EventReport
			for _, typ := range types {
				d.seq++
				evs = append(evs, server.EventReport{Seq: d.seq, Type: typ, Channel: "acme/ipc", Version: d.active, Reason: "the host crashed"})
			}
			req := server.CheckinRequest{Platform: "windows", OSBuild: d.osBuild, AgentVersion: d.agent, Events: evs,
				Channels: []server.ChannelReport{{Channel: "acme/ipc", ActiveVersion: d.active, LKGVersion: d.lkg, State: state}}}
			e.must(t, http.StatusOK, "POST", "/v1/checkin", d.cred, req, nil)
		}
		// Across check-ins, as a looping host reports after each start.
		report(treated, "probation", "unclean-reboot")
		report(treated, "probation", "unclean-reboot", "unclean-reboot", "boot-loop")
		report(treated, "probation", "unclean-reboot", "unclean-reboot")
		report(control, "active", "unclean-reboot", "unclean-reboot")
		e.srv.Drain()
		mid := e.figures(t, e.creds.AdminToken, rel.ID)
		report(control, "active", "unclean-reboot")
		e.srv.Drain()
		after := e.figures(t, e.creds.AdminToken, rel.ID)
		for _, c := range []struct {
			metric string
			fig    figures
			want   int64
		}{
			{"unclean-reboot", after, 1}, {"boot-loop", after, 1},
			{"control-unclean-reboot", mid, 1}, {"control-boot-loop", mid, 0},
			{"control-unclean-reboot", after, 1}, {"control-boot-loop", after, 1},
		} {
			if got := c.fig.sum(c.metric) - before.sum(c.metric); got != c.want {
				t.Errorf("%s grew by %d, want %d", c.metric, got, c.want)
			}
		}
	})
}
