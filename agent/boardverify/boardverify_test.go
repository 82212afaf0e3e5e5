package boardverify

import "testing"

func TestAgentURL(t *testing.T) {
	for in, want := range map[string]string{
		"pynq": "http://pynq:8080", "192.168.2.99:9000": "http://192.168.2.99:9000",
		"https://board.local/": "https://board.local", "[fe80::1]": "http://[fe80::1]:8080",
	} {
		if got, err := agentURL(in); err != nil || got != want {
			t.Errorf("%s: %q %v, want %q", in, got, err, want)
		}
	}
}
