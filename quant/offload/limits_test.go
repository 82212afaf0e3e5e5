package offload

import (
	"strings"
	"testing"
)

func FuzzParseLimits(f *testing.F) {
	f.Add([]byte(`{"parameters": {"MAX_K": 3, "MAX_IFM_CH": 512, "MAX_SIMD": 64}}`))
	f.Add([]byte(`{"parameters": null}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		l, err := ParseLimits(data, "overlay.json")
		if err != nil {
			if !strings.HasPrefix(err.Error(), "overlay.json") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		if l.Check() != nil {
			t.Fatalf("accepted limits that fail Check: %+v", l)
		}
	})
}
