package main

import (
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestVersion: `rtb version` names what the link step stamped (as the container image's build does,
// its context having no .git) and the Go release that built it.
func TestVersion(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := filepath.Join(t.TempDir(), "rtb")
	out, err := exec.Command("go", "build", "-ldflags", "-X main.version=v9.8.7 -X main.commit=0123abc", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	for _, args := range [][]string{{"version"}, {"--version"}} {
		out, err := exec.Command(bin, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("rtb %s: %v\n%s", args[0], err, out)
		}
		for _, want := range []string{"rtb v9.8.7\n", "commit 0123abc\n", "go " + runtime.Version() + " "} {
			if !strings.Contains(string(out), want) {
				t.Errorf("rtb %s printed %q, want it to contain %q", args[0], out, want)
			}
		}
	}
}

func TestLogFormat(t *testing.T) {
	for _, tc := range []struct {
		in       string
		terminal bool
		want     string
	}{
		{"auto", false, "json"}, // a container's or a service manager's pipe
		{"auto", true, "text"},
		{"text", false, "text"},
		{"json", true, "json"},
	} {
		if got := logFormatFor(tc.in, tc.terminal); got != tc.want {
			t.Errorf("logFormatFor(%q, terminal %v) = %q, want %q", tc.in, tc.terminal, got, tc.want)
		}
	}
	if _, err := newLogger("info", "xml"); err == nil {
		t.Error("--log-format xml accepted")
	}
}
