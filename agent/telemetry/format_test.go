package telemetry

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func readTestdata(tb testing.TB, name string) []byte {
	tb.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		tb.Fatal(err)
	}
	return data
}

// The testdata format files were copied from a 6.18 x86-64 kernel's tracefs.
func TestParseFormatReal(t *testing.T) {
	cases := []struct {
		file  string
		field string
		want  Field
	}{
		{"sched_switch.format", "prev_pid", Field{Name: "prev_pid", Type: "pid_t", Offset: 24, Size: 4, Signed: true}},
		{"sched_switch.format", "prev_state", Field{Name: "prev_state", Type: "long", Offset: 32, Size: 8, Signed: true}},
		{"sched_switch.format", "next_pid", Field{Name: "next_pid", Type: "pid_t", Offset: 56, Size: 4, Signed: true}},
		{"sched_wakeup.format", "pid", Field{Name: "pid", Type: "pid_t", Offset: 24, Size: 4, Signed: true}},
		{"sched_wakeup_new.format", "pid", Field{Name: "pid", Type: "pid_t", Offset: 24, Size: 4, Signed: true}},
		{"irq_handler_entry.format", "irq", Field{Name: "irq", Type: "int", Offset: 8, Size: 4, Signed: true}},
	}
	for _, c := range cases {
		f, err := ParseFormat(c.file, readTestdata(t, c.file))
		if err != nil {
			t.Fatal(err)
		}
		got, err := f.Field(c.field)
		if err != nil || got != c.want {
			t.Errorf("%s: Field(%s) = %+v, %v; want %+v", c.file, c.field, got, err, c.want)
		}
	}
	sw, _ := ParseFormat("sched_switch.format", readTestdata(t, "sched_switch.format"))
	if sw.Name != "sched_switch" || sw.ID <= 0 {
		t.Errorf("name %q ID %d", sw.Name, sw.ID)
	}
	if c := sw.Fields["prev_comm"]; c.Type != "char[16]" || c.Size != 16 || c.Offset != 8 {
		t.Errorf("prev_comm = %+v", c)
	}
	if _, err := sw.Field("prev_comm"); err == nil {
		t.Error("Field(prev_comm) accepted a 16-byte array as an integer")
	}
	irq, _ := ParseFormat("irq_handler_entry.format", readTestdata(t, "irq_handler_entry.format"))
	if n := irq.Fields["name"]; n.Type != "__data_loc char[]" || n.Offset != 12 {
		t.Errorf("__data_loc name = %+v", n)
	}
}

// A 32-bit ARM kernel has a 4-byte prev_state ("long"); the layout below is the one
// the struct gives on ILP32 (constructed for the test, not read from a board).
func TestParseFormat32Bit(t *testing.T) {
	const arm = `name: sched_switch
ID: 290
format:
	field:unsigned short common_type;	offset:0;	size:2;	signed:0;
	field:unsigned char common_flags;	offset:2;	size:1;	signed:0;
	field:unsigned char common_preempt_count;	offset:3;	size:1;	signed:0;
	field:int common_pid;	offset:4;	size:4;	signed:1;

	field:char prev_comm[16];	offset:8;	size:16;	signed:1;
	field:pid_t prev_pid;	offset:24;	size:4;	signed:1;
	field:int prev_prio;	offset:28;	size:4;	signed:1;
	field:long prev_state;	offset:32;	size:4;	signed:1;
	field:char next_comm[16];	offset:36;	size:16;	signed:1;
	field:pid_t next_pid;	offset:52;	size:4;	signed:1;
	field:int next_prio;	offset:56;	size:4;	signed:1;
`
	f, err := ParseFormat("arm.format", []byte(arm))
	if err != nil {
		t.Fatal(err)
	}
	for name, off := range map[string]int{"prev_pid": 24, "prev_state": 32, "next_pid": 52} {
		fd, err := f.Field(name)
		if err != nil || fd.Offset != off || fd.Size != 4 {
			t.Errorf("%s = %+v, %v; want offset %d size 4", name, fd, err, off)
		}
	}
}

// Every format file of the running kernel parses (skipped without tracefs).
func TestParseFormatLiveKernel(t *testing.T) {
	var files []string
	for _, dir := range []string{"/sys/kernel/tracing/events", "/sys/kernel/debug/tracing/events"} {
		files, _ = filepath.Glob(filepath.Join(dir, "*", "*", "format"))
		if len(files) > 0 {
			break
		}
	}
	if len(files) == 0 {
		t.Skip("no tracefs mounted (mount -t tracefs nodev /sys/kernel/tracing as root to run this)")
	}
	for _, p := range files {
		data, err := os.ReadFile(p)
		if err != nil {
			continue // some events are root-only
		}
		if _, err := ParseFormat(p, data); err != nil {
			t.Errorf("%v", err)
		}
	}
}

func TestParseFormatBroken(t *testing.T) {
	good := "name: x\nID: 1\nformat:\n\tfield:int a;\toffset:8;\tsize:4;\tsigned:1;\n"
	cases := []struct{ name, in, want string }{
		{"empty", "", "not a tracepoint format file"},
		{"no fields", "name: x\nID: 1\n", "no name or no fields"},
		{"bad id", "name: x\nID: y\n", "broken:2: bad ID"},
		{"no offset", "name: x\n\tfield:int a;\tsize:4;\n", "broken:2: field line lacks offset"},
		{"bad offset", "name: x\n\tfield:int a;\toffset:-8;\tsize:4;\n", "broken:2: offset"},
		{"huge offset", "name: x\n\tfield:int a;\toffset:99999999999;\tsize:4;\n", "broken:2: offset"},
		{"beyond record", "name: x\n\tfield:int a;\toffset:65535;\tsize:4;\n", "beyond"},
		{"no name", "name: x\n\tfield:int;\toffset:0;\tsize:4;\n", "no type and name"},
		{"bad name", "name: x\n\tfield:int a-b;\toffset:0;\tsize:4;\n", "bad name"},
		{"no colon", "name: x\n\tfield:int a;\toffset 0;\tsize:4;\n", "has no ':'"},
	}
	for _, c := range cases {
		_, err := ParseFormat("broken", []byte(c.in))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want it to contain %q", c.name, err, c.want)
		}
	}
	f, err := ParseFormat("good", []byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Field("missing"); err == nil || !strings.Contains(err.Error(), `no field "missing"`) {
		t.Errorf("missing field: %v", err)
	}
	mis := "name: x\n\tfield:long a;\toffset:4;\tsize:8;\n"
	f, _ = ParseFormat("mis", []byte(mis))
	if _, err := f.Field("a"); err == nil || !strings.Contains(err.Error(), "not aligned") {
		t.Errorf("misaligned field: %v", err)
	}
}

func FuzzParseFormat(f *testing.F) {
	for _, n := range []string{"sched_switch.format", "sched_wakeup.format", "irq_handler_entry.format"} {
		f.Add(readTestdata(f, n))
	}
	f.Add([]byte("name: x\n\tfield:char c[;\toffset:0;\tsize:4;\n"))
	f.Add([]byte("name: x\n\tfield:int a;\toffset:8;\tsize:4;\tsigned:z;\n"))
	f.Add([]byte("\tfield:;;;:\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		fm, err := ParseFormat("fuzz", data)
		if err != nil {
			return
		}
		for name, fd := range fm.Fields {
			if fd.Name != name || fd.Offset < 0 || fd.Size < 0 || fd.Offset+fd.Size > maxRecord {
				t.Fatalf("field %q = %+v", name, fd)
			}
			if got, err := fm.Field(name); err == nil && (got.Size != 4 && got.Size != 8 || got.Offset%got.Size != 0) {
				t.Fatalf("Field(%q) accepted %+v", name, got)
			}
		}
	})
}
