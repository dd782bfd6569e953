package main

import (
	"encoding/json"
	"net"
	"os"
	"path/filepath"
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
