package agent

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// installBuild writes a pending build of version into slot a, and, when
// lkg is set, a confirmed build 1 in slot b.
func installBuild(t *testing.T, data string, version uint64, lkg bool) {
	t.Helper()
	j := NewJournal()
	ch := j.Channel("acme/sensor-linux")
	ch.Kind = KindBuild
	if lkg {
		ch.LKGVersion, ch.LKGSlot = 1, SlotB
		writeExe(t, BuildExe(data, "acme/sensor-linux", SlotB, 1))
	}
	slot := BeginActivation(ch, version, time.Now())
	writeExe(t, BuildExe(data, "acme/sensor-linux", slot, version))
	if err := j.Save(data); err != nil {
		t.Fatal(err)
	}
}

func writeExe(t *testing.T, path string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
}

// TestPrepareLaunchCountsStartsAndReverts: the launcher starts a build on
// probation at most the boot limit times, then reverts it to the
// last-known-good build (or its own binary), with the events the server
// hears; a newer build starts its count afresh.
func TestPrepareLaunchCountsStartsAndReverts(t *testing.T) {
	for _, lkg := range []bool{true, false} {
		data := t.TempDir()
		if l, err := PrepareLaunch(data, 3, time.Now()); err != nil || l.Exe != "" || l.Trial {
			t.Fatalf("no build installed: %+v, %v; want the launcher's own binary", l, err)
		}
		installBuild(t, data, 2, lkg)
		for i := 1; i <= 3; i++ {
			l, err := PrepareLaunch(data, 3, time.Now())
			if err != nil || !l.Trial || l.Version != 2 || l.Reverted != "" || !strings.HasSuffix(l.Exe, filepath.Join("a", "2", ExeName())) {
				t.Fatalf("start %d: %+v, %v; want build 2 on trial", i, l, err)
			}
		}
		l, err := PrepareLaunch(data, 3, time.Now())
		if err != nil || l.Trial || !strings.Contains(l.Reverted, "started agent build acme/sensor-linux@2 3 times") {
			t.Fatalf("fourth start: %+v, %v; want build 2 reverted", l, err)
		}
		wantExe, wantVersion := "", uint64(0)
		if lkg {
			wantExe, wantVersion = BuildExe(data, "acme/sensor-linux", SlotB, 1), 1
		}
		if l.Exe != wantExe || l.Version != wantVersion {
			t.Errorf("after the revert runs %q (%d), want %q (%d)", l.Exe, l.Version, wantExe, wantVersion)
		}
		j, _ := LoadJournal(data)
		if ch := BuildChannel(j); ch.State != StateReverted || len(ch.Refused) != 1 || ch.Refused[0] != 2 {
			t.Errorf("journal after the revert: %+v", ch)
		}
		q, _ := OpenQueue(data, 0)
		var types []string
		for _, e := range q.Pending(10) {
			types = append(types, string(e.Type))
		}
		if strings.Join(types, ",") != "boot-loop,reverted" {
			t.Errorf("queued %v, want boot-loop and reverted", types)
		}
		// A newer build starts counting from one.
		installBuild(t, data, 3, lkg)
		if l, err := PrepareLaunch(data, 3, time.Now()); err != nil || !l.Trial || l.Version != 3 {
			t.Errorf("a newer build: %+v, %v; want it on trial", l, err)
		}
	}
}

// A build on probation that dies uncleanly at its starts is charged for
// it alone: the content on probation beside it is neither reported as
// crashed nor counted a failed start, so a bad build cannot revert good
// content (the first start after the switch is not the build's doing).
func TestPrepareLaunchBlamesTheBuildOnTrial(t *testing.T) {
	data := t.TempDir()
	installBuild(t, data, 2, true)
	j, err := LoadJournal(data)
	if err != nil {
		t.Fatal(err)
	}
	content := j.Channel("acme/ipc")
	*content = *onProbation()
	if err := j.Save(data); err != nil {
		t.Fatal(err)
	}
	marker := filepath.Join(data, runningFile)
	unclean := func() {
		if err := os.WriteFile(marker, []byte("1\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	unclean() // the old build's last run: not the trial's doing
	for i := 1; i <= 3; i++ {
		if _, err := PrepareLaunch(data, 3, time.Now()); err != nil {
			t.Fatal(err)
		}
		_, err := os.Stat(marker)
		if first := i == 1; first == (err != nil) {
			t.Fatalf("start %d: marker present %v; want it left for the agent only before the first trial start", i, err == nil)
		}
		unclean() // the trial dies
	}
	if _, err := PrepareLaunch(data, 3, time.Now()); err != nil { // reverts it
		t.Fatal(err)
	}
	q, _ := OpenQueue(data, 0)
	var got []string
	for _, e := range q.Pending(20) {
		got = append(got, fmt.Sprintf("%s %s@%d", e.Type, e.Channel, e.Version))
	}
	want := "unclean-reboot acme/sensor-linux@2,unclean-reboot acme/sensor-linux@2,unclean-reboot acme/sensor-linux@2,boot-loop acme/sensor-linux@2,reverted acme/sensor-linux@2"
	if strings.Join(got, ",") != want {
		t.Errorf("queued %v\nwant %s", got, want)
	}
	j, _ = LoadJournal(data)
	if ch := j.Channels["acme/ipc"]; ch.Pending == nil || ch.Pending.Attempts != 0 {
		t.Errorf("content on probation after the build's failed starts: %+v", ch)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Error("the failed trial's marker is left for the agent to count against content")
	}
}

// TestPrepareLaunchRefusesAMissingBuild: a journal naming a build whose
// executable is gone is an error (the launcher then runs its own binary),
// never a start of nothing.
func TestPrepareLaunchRefusesAMissingBuild(t *testing.T) {
	data := t.TempDir()
	installBuild(t, data, 2, false)
	if err := os.Remove(BuildExe(data, "acme/sensor-linux", SlotA, 2)); err != nil {
		t.Fatal(err)
	}
	if _, err := PrepareLaunch(data, 3, time.Now()); err == nil || !strings.Contains(err.Error(), "acme/sensor-linux@2") {
		t.Errorf("PrepareLaunch: %v, want an error naming the build", err)
	}
}
