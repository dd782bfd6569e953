package main

import (
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/valyala/fasthttp"
)

func TestLoadgenHelp(t *testing.T) {
	if code := run([]string{"loadgen", "--help"}); code != 0 {
		t.Fatalf("rtb loadgen --help exited %d", code)
	}
}

func TestLoadgenBadCompareFlags(t *testing.T) {
	defer func(e func(int)) { exit = e }(exit)
	for _, args := range [][]string{
		{"--target", "http://a/bid,http://b/bid", "--label", "one"},
		{"--target", "http://a/bid,http://b/bid", "--admin", "http://a:8081"},
		{"--day-length", "1m", "--day-start", "tomorrow"},
		{"--day-length", "1m", "--day-shape", "square"},
	} {
		code := -1
		exit = func(c int) { code = c }
		_ = loadgen(args)
		if code != 2 {
			t.Errorf("rtb loadgen %v: exit %d, want 2", args, code)
		}
	}
}

// Two targets, labelled, without admin ports: the JSON report holds both and the comparison.
func TestLoadgenCompareOut(t *testing.T) {
	var urls []string
	for range 2 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) { ctx.SetStatusCode(204) }}
		go func() { _ = srv.Serve(ln) }()
		t.Cleanup(func() { _ = srv.Shutdown() })
		urls = append(urls, "http://"+ln.Addr().String()+"/openrtb2/bid")
	}
	out := filepath.Join(t.TempDir(), "r.json")
	if err := loadgen([]string{"--target", urls[0] + "," + urls[1], "--label", "old,new", "--market", "--notice-delay", "1ms",
		"--rate", "100", "--duration", "300ms", "--connections", "2", "--pool", "50", "--out", out}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var rep struct {
		Targets []struct {
			Label  string `json:"label"`
			Market struct {
				AdminError string `json:"admin_error"`
			} `json:"market"`
		} `json:"targets"`
		Comparison []struct {
			Label string `json:"label"`
		} `json:"comparison"`
	}
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Targets) != 2 || rep.Targets[0].Label != "old" || rep.Targets[1].Label != "new" ||
		len(rep.Comparison) != 2 || rep.Targets[1].Market.AdminError == "" {
		t.Fatalf("%s", b)
	}
}

// captureStdout runs f with os.Stdout and os.Stderr going to files and returns what each got.
func captureStdout(t *testing.T, f func()) (stdout, stderr string) {
	t.Helper()
	dir := t.TempDir()
	o, err := os.Create(filepath.Join(dir, "stdout"))
	if err != nil {
		t.Fatal(err)
	}
	e, err := os.Create(filepath.Join(dir, "stderr"))
	if err != nil {
		t.Fatal(err)
	}
	defer func(so, se *os.File) { os.Stdout, os.Stderr = so, se }(os.Stdout, os.Stderr)
	os.Stdout, os.Stderr = o, e
	f()
	o.Close()
	e.Close()
	ob, _ := os.ReadFile(o.Name())
	eb, _ := os.ReadFile(e.Name())
	return string(ob), string(eb)
}

// TestLoadgenTargetAnswering404: a target that answers 404 to everything (the path is wrong) ends
// the run with a warning naming the status and the bid endpoint, and exit status 4.
func TestLoadgenTargetAnswering404(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) { ctx.Error("404 page not found", 404) }}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Shutdown() })
	defer func(e func(int)) { exit = e }(exit)
	code := 0
	exit = func(c int) { code = c }
	out, errOut := captureStdout(t, func() {
		if err := loadgen([]string{"--target", "http://" + ln.Addr().String() + "/bid", "--rate", "100", "--duration", "300ms",
			"--connections", "2", "--pool", "20"}); err != nil {
			t.Error(err)
		}
	})
	if code != 4 {
		t.Errorf("exit status %d, want 4", code)
	}
	for name, text := range map[string]string{"stdout": out, "stderr": errOut} {
		for _, want := range []string{"WARNING", "requests answered 404: is --target the bid endpoint, http://" + ln.Addr().String() + "/openrtb2/bid?", `"404 page not found"`} {
			if !strings.Contains(text, want) {
				t.Errorf("%s lacks %q:\n%s", name, want, text)
			}
		}
	}
}

// TestLoadgenTargetWithoutPath: --target host:port sends to its /openrtb2/bid.
func TestLoadgenTargetWithoutPath(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var other atomic.Int64
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		if string(ctx.Path()) != "/openrtb2/bid" {
			other.Add(1)
			ctx.Error("not found", 404)
			return
		}
		ctx.SetStatusCode(204)
	}}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Shutdown() })
	defer func(e func(int)) { exit = e }(exit)
	code := 0
	exit = func(c int) { code = c }
	out, _ := captureStdout(t, func() {
		if err := loadgen([]string{"--target", ln.Addr().String(), "--rate", "100", "--duration", "300ms", "--connections", "2", "--pool", "20"}); err != nil {
			t.Error(err)
		}
	})
	if code != 0 || other.Load() != 0 || !strings.Contains(out, "target      http://"+ln.Addr().String()+"/openrtb2/bid") {
		t.Errorf("exit %d, %d requests off the bid path; report:\n%s", code, other.Load(), out)
	}
}
