// Package prometheus_test checks the alerting rules in rules.yml with Prometheus' own tool
// (promtool, Debian package prometheus; .ci/run installs it): that they load, that the unit tests
// in rules_test.yml pass, and that every metric they use is one that rtb exports.
package prometheus_test

import (
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func promtool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatal("promtool not found: install Debian's prometheus package (.ci/run does)")
	}
	return p
}

func run(t *testing.T, args ...string) {
	t.Helper()
	out, err := exec.Command(promtool(t), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func TestRulesLoad(t *testing.T) {
	run(t, "check", "rules", "rules.yml")
}

func TestRulesUnitTests(t *testing.T) {
	run(t, "test", "rules", "rules_test.yml")
}

// TestRulesUseExportedMetrics guards against a metric renamed in the code and not in the rules:
// each rtb_ metric name in rules.yml must appear as a Go string literal in the module's non-test
// sources.
func TestRulesUseExportedMetrics(t *testing.T) {
	rules, err := os.ReadFile("rules.yml")
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, n := range regexp.MustCompile(`\brtb_[a-z_]+[a-z]\b`).FindAllString(string(rules), -1) {
		names[n] = false
	}
	if len(names) == 0 {
		t.Fatal("no rtb_ metric in rules.yml")
	}
	root := filepath.Join("..", "..")
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if d.Name() == ".git" || d.Name() == "testdata" {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for n := range names {
			if strings.Contains(string(src), `"`+n+`"`) {
				names[n] = true
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for n, found := range names {
		if !found {
			t.Errorf("rules.yml uses %s, which no Go source of rtb exports", n)
		}
	}
}
