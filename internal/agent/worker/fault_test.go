package worker

import (
	"strings"
	"testing"
)

func TestParseFault(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    string // String() of the result
		wantErr string // a part of the error that names what is wrong
	}{
		{name: "empty", in: "", want: ""},
		{name: "blank", in: "  ", want: ""},
		{name: "worker-crash", in: "worker-crash:acme/ipc@293", want: "worker-crash:acme/ipc@293"},
		{name: "host-crash", in: "host-crash:acme/ipc@294", want: "host-crash:acme/ipc@294"},
		{name: "several-with-spaces", in: " worker-crash:acme/ipc@293 , host-crash:beta/dns_v2@7", want: "worker-crash:acme/ipc@293,host-crash:beta/dns_v2@7"},
		{name: "switch-steps", in: "switch-staged:acme/sensor-linux@2,switch-journaled:acme/sensor-linux@2,switch-launch:acme/sensor-linux@2",
			want: "switch-staged:acme/sensor-linux@2,switch-journaled:acme/sensor-linux@2,switch-launch:acme/sensor-linux@2"},
		{name: "unknown-kind", in: "kernel-panic:acme/ipc@1", wantErr: `unknown kind "kernel-panic": want one of worker-crash, host-crash, hang, switch-staged`},
		{name: "no-colon", in: "worker-crash", wantErr: "no ':'"},
		{name: "no-version", in: "worker-crash:acme/ipc", wantErr: `no '@VERSION' in "acme/ipc"`},
		{name: "no-vendor", in: "worker-crash:ipc@1", wantErr: `channel "ipc"`},
		{name: "upper-case-channel", in: "worker-crash:Acme/ipc@1", wantErr: `channel "Acme/ipc"`},
		{name: "version-zero", in: "worker-crash:acme/ipc@0", wantErr: `version "0"`},
		{name: "version-not-a-number", in: "worker-crash:acme/ipc@v2", wantErr: `version "v2"`},
		{name: "negative-version", in: "host-crash:acme/ipc@-1", wantErr: `version "-1"`},
		{name: "trailing-comma", in: "worker-crash:acme/ipc@1,", wantErr: `fault 2 "": empty`},
		{name: "second-part-bad", in: "worker-crash:acme/ipc@1,host-crash:acme/ipc", wantErr: `fault 2 "host-crash:acme/ipc"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := ParseFault(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseFault(%q) error = %v, want one containing %q", tt.in, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseFault(%q): %v", tt.in, err)
			}
			if got := f.String(); got != tt.want {
				t.Errorf("ParseFault(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestFaultPredicates(t *testing.T) {
	f, err := ParseFault("worker-crash:acme/ipc@293,host-crash:acme/ipc@294")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name              string
		channel           string
		version           uint64
		worker, hostCrash bool
	}{
		{name: "worker-crash-version", channel: "acme/ipc", version: 293, worker: true},
		{name: "host-crash-version", channel: "acme/ipc", version: 294, hostCrash: true},
		{name: "other-version", channel: "acme/ipc", version: 292},
		{name: "other-channel", channel: "acme/dns", version: 293},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := f.WorkerCrash(tt.channel, tt.version); got != tt.worker {
				t.Errorf("WorkerCrash(%s, %d) = %v, want %v", tt.channel, tt.version, got, tt.worker)
			}
			if got := f.HostCrash(tt.channel, tt.version); got != tt.hostCrash {
				t.Errorf("HostCrash(%s, %d) = %v, want %v", tt.channel, tt.version, got, tt.hostCrash)
			}
		})
	}
	var none Fault
	if none.WorkerCrash("acme/ipc", 293) || none.HostCrash("acme/ipc", 294) {
		t.Error("the zero Fault injects a fault")
	}
}
