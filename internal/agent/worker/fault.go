package worker

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/ringfence/ringfence/internal/protocol"
)

// FaultEnv is the environment variable ParseFault reads in
// ringfence-agent, for tests and demos. The worker inherits it, so one
// setting reaches both processes.
const FaultEnv = "RINGFENCE_FAULT"

// FaultKind is what an injected fault does.
type FaultKind string

const (
	// FaultWorkerCrash: the worker process dies whenever it loads the
	// version, as content that faults would make it.
	FaultWorkerCrash FaultKind = "worker-crash"
	// FaultHostCrash: the agent kills itself while activating the
	// version and at every start while the version is loaded, as a host
	// that goes down loading it would (until the boot-loop limit reverts
	// it).
	FaultHostCrash FaultKind = "host-crash"
	// FaultHang: the worker stops answering, and reading, once it loads
	// the version, as content that sends the evaluator into an endless
	// loop would; the agent's watchdog must kill it.
	FaultHang FaultKind = "hang"
	// The steps of an agent build's switch-over, each a kill -9 at that
	// point (the process kills itself), for the tests that the switch
	// never leaves a device without a working agent:
	// FaultSwitchStaged: the agent dies once the build is staged and
	// unpacked, before the journal names it.
	FaultSwitchStaged FaultKind = "switch-staged"
	// FaultSwitchJournaled: the agent dies once the journal names the
	// build, before it exits for the launcher to start it.
	FaultSwitchJournaled FaultKind = "switch-journaled"
	// FaultSwitchLaunch: the launcher dies once it counted the build's
	// start, before starting it.
	FaultSwitchLaunch FaultKind = "switch-launch"
)

var faultKinds = []FaultKind{FaultWorkerCrash, FaultHostCrash, FaultHang, FaultSwitchStaged, FaultSwitchJournaled, FaultSwitchLaunch}

// Fault is a set of injected faults: the crashes the recovery logic must
// survive, reproducible on a real device without bad content. The zero
// value injects nothing.
type Fault struct {
	rules []faultRule
}

type faultRule struct {
	kind    FaultKind
	channel string
	version uint64
}

// ParseFault parses RINGFENCE_FAULT: comma-separated KIND:VENDOR/CHANNEL@VERSION,
// e.g. "worker-crash:acme/ipc@293,host-crash:acme/ipc@294". Blank means no
// fault. A typo must not silently disable the fault a test depends on, so
// every part is checked and the error names the one that is wrong.
func ParseFault(s string) (Fault, error) {
	var f Fault
	if strings.TrimSpace(s) == "" {
		return f, nil
	}
	for i, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		r, err := parseFaultRule(part)
		if err != nil {
			return Fault{}, fmt.Errorf("fault %d %q: %w", i+1, part, err)
		}
		f.rules = append(f.rules, r)
	}
	return f, nil
}

func parseFaultRule(s string) (faultRule, error) {
	if s == "" {
		return faultRule{}, errors.New("empty: want KIND:VENDOR/CHANNEL@VERSION")
	}
	kind, target, ok := strings.Cut(s, ":")
	if !ok {
		return faultRule{}, errors.New("no ':' after the kind: want KIND:VENDOR/CHANNEL@VERSION")
	}
	if !slices.Contains(faultKinds, FaultKind(kind)) {
		names := make([]string, len(faultKinds))
		for i, k := range faultKinds {
			names[i] = string(k)
		}
		return faultRule{}, fmt.Errorf("unknown kind %q: want one of %s", kind, strings.Join(names, ", "))
	}
	channel, version, ok := strings.Cut(target, "@")
	if !ok {
		return faultRule{}, fmt.Errorf("no '@VERSION' in %q: want VENDOR/CHANNEL@VERSION", target)
	}
	if !protocol.ValidChannel(channel) {
		return faultRule{}, fmt.Errorf("channel %q is not VENDOR/CHANNEL (lower-case names)", channel)
	}
	v, err := strconv.ParseUint(version, 10, 64)
	if err != nil || v == 0 {
		return faultRule{}, fmt.Errorf("version %q is not a positive whole number", version)
	}
	return faultRule{kind: FaultKind(kind), channel: channel, version: v}, nil
}

func (f Fault) has(kind FaultKind, channel string, version uint64) bool {
	for _, r := range f.rules {
		if r.kind == kind && r.channel == channel && r.version == version {
			return true
		}
	}
	return false
}

// WorkerCrash says whether the worker must die loading channel@version.
func (f Fault) WorkerCrash(channel string, version uint64) bool {
	return f.has(FaultWorkerCrash, channel, version)
}

// Hang says whether the worker must stop answering once it loads
// channel@version.
func (f Fault) Hang(channel string, version uint64) bool {
	return f.has(FaultHang, channel, version)
}

// HostCrash says whether the agent must kill itself activating
// channel@version.
func (f Fault) HostCrash(channel string, version uint64) bool {
	return f.has(FaultHostCrash, channel, version)
}

// Switch says whether to die at step (one of the FaultSwitch kinds) of
// switching to build channel@version.
func (f Fault) Switch(step FaultKind, channel string, version uint64) bool {
	return f.has(step, channel, version)
}

// String is the RINGFENCE_FAULT form, so a parsed fault can be logged and
// passed on as it was given.
func (f Fault) String() string {
	parts := make([]string, len(f.rules))
	for i, r := range f.rules {
		parts[i] = fmt.Sprintf("%s:%s@%d", r.kind, r.channel, r.version)
	}
	return strings.Join(parts, ",")
}
