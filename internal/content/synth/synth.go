// Package synth generates synthetic detection content and events of a
// realistic shape, for benchmarks and load tests: a bundle of N instances
// with mixed criteria over a 21-field ipc-like template type, and events
// of which a few percent match.
package synth

import (
	"fmt"
	"math/rand/v2"

	"github.com/ringfence/ringfence/internal/content"
)

// TemplateType returns the ipc@3 schema used by the examples.
func TemplateType() *content.TemplateType {
	tt := &content.TemplateType{Name: "ipc", Version: 3}
	add := func(name string, t content.FieldType, values ...string) {
		tt.Fields = append(tt.Fields, content.Field{Index: len(tt.Fields) + 1, Name: name, Type: t, Values: values})
	}
	add("process_image", content.TypePath)
	add("process_cmdline", content.TypeString)
	add("process_sha256", content.TypeSHA256)
	add("parent_image", content.TypePath)
	add("user_sid", content.TypeString)
	add("session_id", content.TypeUint)
	add("integrity_level", content.TypeEnum, "untrusted", "low", "medium", "high", "system")
	add("pipe_name", content.TypeString)
	add("pipe_direction", content.TypeEnum, "inbound", "outbound", "duplex")
	add("pipe_mode", content.TypeEnum, "byte", "message")
	add("max_instances", content.TypeUint)
	add("remote_host", content.TypeIP)
	add("remote_port", content.TypeUint)
	add("is_remote", content.TypeBool)
	add("bytes_written", content.TypeUint)
	add("bytes_read", content.TypeUint)
	add("access_mask", content.TypeUint)
	add("impersonation_level", content.TypeEnum, "anonymous", "identification", "impersonation", "delegation")
	add("pid", content.TypeUint)
	add("tid", content.TypeInt)
	add("pipe_owner_sid", content.TypeString)
	return tt
}

func str(s string) *content.Scalar { return &content.Scalar{Text: s, Tag: "!!str"} }
func num(n int) *content.Scalar    { return &content.Scalar{Text: fmt.Sprint(n), Tag: "!!int"} }

// Bundle builds a valid bundle of n instances. The anchor criteria are
// mixed: equals, in, prefix, suffix, glob, cidr and, for a tenth of the
// instances, only unindexable ones (contains, regex, range), which every
// event must test.
func Bundle(n int, seed uint64) *content.Bundle {
	r := rand.New(rand.NewPCG(seed, 1))
	b := &content.Bundle{Vendor: "acme", Channel: "ipc", Version: 1000, TemplateType: content.TypeRef{Name: "ipc", Version: 3}}
	for i := range n {
		in := content.Instance{ID: fmt.Sprintf("synth-%05d", i), Severity: content.SeverityMedium, Action: content.Action(1 + i%3)}
		c := func(field string, op content.Op) *content.Criterion {
			in.Criteria = append(in.Criteria, content.Criterion{FieldName: field, Op: op})
			return &in.Criteria[len(in.Criteria)-1]
		}
		switch k := r.IntN(100); {
		case k < 35:
			c("pipe_name", content.OpEquals).Value = str(pipeName(i))
		case k < 45:
			cr := c("process_sha256", content.OpIn)
			for j := range 3 {
				cr.Values = append(cr.Values, *str(digest(i*3 + j)))
			}
		case k < 60:
			c("process_image", content.OpPrefix).Value = str(fmt.Sprintf(`C:\Tools\vendor%03d\`, i))
		case k < 70:
			c("process_image", content.OpSuffix).Value = str(fmt.Sprintf(`\tool%04d.exe`, i))
		case k < 80:
			c("pipe_name", content.OpGlob).Value = str(fmt.Sprintf(`\\.\pipe\svc%04d_*`, i))
		case k < 90:
			c("remote_host", content.OpCIDR).Value = str(subnet(i) + ".0/24")
		case k < 94:
			c("process_cmdline", content.OpContains).Value = str(fmt.Sprintf("--payload-%04d", i))
		case k < 97:
			c("pipe_name", content.OpRegex).Value = str(fmt.Sprintf(`^\\\\\.\\pipe\\rx%04d-[0-9a-f]{4}$`, i))
		default:
			cr := c("bytes_written", content.OpRange)
			cr.Min, cr.Max = num(1_000_000+i*1000), num(1_000_000+i*1000+10)
		}
		// Secondary criteria, tested only on candidates.
		switch r.IntN(4) {
		case 0:
			c("integrity_level", content.OpIn).Values = []content.Scalar{*str("high"), *str("system")}
		case 1:
			cr := c("session_id", content.OpRange)
			cr.Min, cr.Max = num(0), num(100)
		case 2:
			c("parent_image", content.OpSuffix).Value = str(`\services.exe`)
		}
		c("pipe_owner_sid", content.OpAny)
		b.Instances = append(b.Instances, in)
	}
	return b
}

// subnet is instance i's /24: 10.x.y below 65,536 instances, then 11.x.y
// and on, so that bundles up to MaxInstances stay valid.
func subnet(i int) string { return fmt.Sprintf("%d.%d.%d", 10+i/65536, i/256%256, i%256) }

func pipeName(i int) string { return fmt.Sprintf(`\\.\pipe\evil_%05d`, i) }
func digest(i int) string   { return fmt.Sprintf("%064x", uint64(i)*0x9e3779b97f4a7c15+1) }

// Compiled compiles Bundle(n, seed) against TemplateType.
func Compiled(n int, seed uint64) *content.Compiled {
	c, fs := content.Compile(Bundle(n, seed), TemplateType())
	if c == nil {
		panic(fmt.Sprintf("synth: generated bundle does not compile: %v", fs))
	}
	return c
}

// Events returns count events for a bundle of n instances; roughly one in
// twenty is built to hit some instance's anchor.
func Events(count, n int, seed uint64) []content.Event {
	r := rand.New(rand.NewPCG(seed, 2))
	evs := make([]content.Event, count)
	for e := range evs {
		i := r.IntN(max(n, 1))
		hit := r.IntN(20) == 0
		image := fmt.Sprintf(`C:\Program Files\App%03d\app.exe`, r.IntN(500))
		pipe := fmt.Sprintf(`\\.\pipe\app_%05d`, r.IntN(100000))
		sha := fmt.Sprintf("%064x", r.Uint64())
		host := fmt.Sprintf("192.168.%d.%d", r.IntN(256), r.IntN(256))
		cmd := "app.exe --run"
		if hit {
			switch r.IntN(6) {
			case 0:
				pipe = pipeName(i)
			case 1:
				sha = digest(i * 3)
			case 2:
				image = fmt.Sprintf(`C:\TOOLS\Vendor%03d\x.exe`, i)
			case 3:
				image = fmt.Sprintf(`D:\bin\TOOL%04d.EXE`, i)
			case 4:
				host = subnet(i) + ".7"
			case 5:
				cmd = fmt.Sprintf("app.exe --payload-%04d", i)
			}
		}
		evs[e] = content.Event{Type: content.TypeRef{Name: "ipc", Version: 3}, Inputs: []content.Value{
			content.Str(image), content.Str(cmd), content.Str(sha), content.Str(`C:\Windows\System32\services.exe`),
			content.Str("S-1-5-18"), content.Uint(uint64(r.IntN(4))), content.Str("system"), content.Str(pipe),
			content.Str("duplex"), content.Str("byte"), content.Uint(1), content.Str(host), content.Uint(445),
			content.Bool(r.IntN(2) == 0), content.Uint(uint64(r.IntN(2_000_000))), content.Uint(64), content.Uint(3),
			content.Str("impersonation"), content.Uint(uint64(r.IntN(65536))), content.Int(int64(r.IntN(65536))),
		}}
	}
	return evs
}
