package telemetry

import (
	"bufio"
	"bytes"
	"fmt"
	"strconv"
	"strings"
)

// Field is one field of a tracepoint record as the tracefs format file describes it.
type Field struct {
	Name   string // e.g. "next_pid"
	Type   string // C declaration without the name, e.g. "pid_t", "char[16]"
	Offset int    // byte offset in the record (the BPF program's context)
	Size   int    // bytes
	Signed bool
}

// Format is a parsed tracepoint format file (events/<group>/<name>/format).
type Format struct {
	Name   string
	ID     int
	Fields map[string]Field
}

// Field returns the named field, checking that it is a 4- or 8-byte integer that a BPF
// program can load with one instruction.
func (f *Format) Field(name string) (Field, error) {
	fd, ok := f.Fields[name]
	if !ok {
		return Field{}, fmt.Errorf("tracepoint %s has no field %q (kernel too old or too new for this probe)", f.Name, name)
	}
	if fd.Size != 4 && fd.Size != 8 {
		return Field{}, fmt.Errorf("tracepoint %s field %s: size %d, want 4 or 8", f.Name, name, fd.Size)
	}
	if fd.Offset%fd.Size != 0 {
		return Field{}, fmt.Errorf("tracepoint %s field %s: offset %d not aligned to its size %d", f.Name, name, fd.Offset, fd.Size)
	}
	return fd, nil
}

// maxRecord bounds field offsets: a tracepoint record is at most a page.
const maxRecord = 1 << 16

// ParseFormat parses a tracefs format file. file names the source in errors, which
// carry file:line.
func ParseFormat(file string, data []byte) (*Format, error) {
	f := &Format{Fields: map[string]Field{}, ID: -1}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		switch {
		case strings.HasPrefix(text, "name:"):
			f.Name = strings.TrimSpace(strings.TrimPrefix(text, "name:"))
		case strings.HasPrefix(text, "ID:"):
			id, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(text, "ID:")))
			if err != nil || id < 0 {
				return nil, fmt.Errorf("%s:%d: bad ID line %q", file, line, text)
			}
			f.ID = id
		case strings.HasPrefix(text, "field:"):
			fd, err := parseField(text)
			if err != nil {
				return nil, fmt.Errorf("%s:%d: %w", file, line, err)
			}
			f.Fields[fd.Name] = fd
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s:%d: %w", file, line+1, err)
	}
	if f.Name == "" || len(f.Fields) == 0 {
		return nil, fmt.Errorf("%s: no name or no fields: not a tracepoint format file", file)
	}
	return f, nil
}

// parseField parses "field:<decl>;\toffset:N;\tsize:N;\tsigned:N;".
func parseField(text string) (Field, error) {
	var fd Field
	parts := strings.Split(text, ";")
	seen := map[string]bool{}
	for _, p := range parts {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		key, val, ok := strings.Cut(p, ":")
		if !ok {
			return fd, fmt.Errorf("field part %q has no ':'", p)
		}
		val = strings.TrimSpace(val)
		seen[key] = true
		var err error
		switch key {
		case "field":
			fd.Name, fd.Type, err = splitDecl(val)
		case "offset":
			fd.Offset, err = boundedInt(key, val)
		case "size":
			fd.Size, err = boundedInt(key, val)
		case "signed":
			var n int
			n, err = boundedInt(key, val)
			fd.Signed = n != 0
		}
		if err != nil {
			return fd, err
		}
	}
	for _, k := range []string{"field", "offset", "size"} {
		if !seen[k] {
			return fd, fmt.Errorf("field line lacks %s:", k)
		}
	}
	if fd.Offset+fd.Size > maxRecord {
		return fd, fmt.Errorf("field %s ends at %d, beyond %d", fd.Name, fd.Offset+fd.Size, maxRecord)
	}
	return fd, nil
}

func boundedInt(key, val string) (int, error) {
	n, err := strconv.Atoi(val)
	if err != nil || n < 0 || n > maxRecord {
		return 0, fmt.Errorf("%s %q: want an integer in 0..%d", key, val, maxRecord)
	}
	return n, nil
}

// splitDecl splits a C declaration such as "unsigned char common_flags",
// "char prev_comm[16]" or "__data_loc char[] name" into name and type.
func splitDecl(decl string) (name, typ string, err error) {
	arr := ""
	if i := strings.IndexByte(decl, '['); i >= 0 && strings.HasSuffix(decl, "]") && !strings.HasSuffix(decl[:i], " ") {
		// "char prev_comm[16]": the brackets belong to the name.
		if j := strings.LastIndexByte(decl[:i], ' '); j >= 0 {
			arr = decl[i:]
			decl = decl[:i]
		}
	}
	j := strings.LastIndexAny(decl, " *")
	if j < 0 || j == len(decl)-1 {
		return "", "", fmt.Errorf("declaration %q has no type and name", decl)
	}
	name = decl[j+1:]
	for _, r := range name {
		if r != '_' && (r < '0' || r > '9') && (r < 'a' || r > 'z') && (r < 'A' || r > 'Z') {
			return "", "", fmt.Errorf("declaration %q: bad name %q", decl, name)
		}
	}
	return name, strings.TrimSpace(decl[:j+1]) + arr, nil
}
