package loadtest

import (
	"context"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

func TestBidURL(t *testing.T) {
	for in, want := range map[string]string{
		"http://127.0.0.1:8080":              "http://127.0.0.1:8080/openrtb2/bid",
		"http://127.0.0.1:8080/":             "http://127.0.0.1:8080/openrtb2/bid",
		"127.0.0.1:8080":                     "http://127.0.0.1:8080/openrtb2/bid",
		"localhost:8080/custom/bid":          "http://localhost:8080/custom/bid",
		"https://bid.example.com":            "https://bid.example.com/openrtb2/bid",
		"http://127.0.0.1:8080/openrtb2/bid": "http://127.0.0.1:8080/openrtb2/bid",
		"http://h:1/bid?exchange=x":          "http://h:1/bid?exchange=x",
	} {
		if got := BidURL(in); got != want {
			t.Errorf("BidURL(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestTargetWithoutPathHitsBidEndpoint: --target http://host:port and host:port send to /openrtb2/bid.
func TestTargetWithoutPathHitsBidEndpoint(t *testing.T) {
	var mu sync.Mutex
	paths := map[string]int{}
	url := serve(t, func(ctx *fasthttp.RequestCtx) {
		mu.Lock()
		paths[string(ctx.Path())]++
		mu.Unlock()
		ctx.SetStatusCode(204)
	})
	base := strings.TrimSuffix(url, "/openrtb2/bid")
	for _, target := range []string{base, strings.TrimPrefix(base, "http://")} {
		rep, err := Run(context.Background(), Config{Target: target, Rate: 100, Duration: 200 * time.Millisecond, Connections: 2, PoolSize: 10})
		if err != nil {
			t.Fatalf("--target %s: %v", target, err)
		}
		if rep.Target != url || rep.Outcomes.NoBid == 0 || rep.Warning != "" {
			t.Errorf("--target %s: report target %q, outcomes %+v, warning %q; want %s answered 204", target, rep.Target, rep.Outcomes, rep.Warning, url)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(paths) != 1 || paths["/openrtb2/bid"] == 0 {
		t.Errorf("paths requested %v, want /openrtb2/bid only", paths)
	}
}

// TestMostlyFailedRunWarns: a run where most requests fail says so, with the status, the hint and
// the first distinct answers; a run with a few failures does not.
func TestMostlyFailedRunWarns(t *testing.T) {
	var n atomic.Int64
	tests := []struct {
		name    string
		handler fasthttp.RequestHandler
		want    []string // in the warning; none = no warning
	}{
		{"every answer 404: the path is wrong", func(ctx *fasthttp.RequestCtx) { ctx.Error("not found\n", 404) },
			[]string{"requests answered 404", "is --target the bid endpoint, http://", "/openrtb2/bid?", `answered 404 (`, `"not found\n"`}},
		{"400 and 503 alternate", func(ctx *fasthttp.RequestCtx) {
			if n.Add(1)%2 == 0 {
				ctx.Error("invalid: imp missing\n", 400)
				return
			}
			ctx.Error("overloaded\n", 503)
		}, []string{"requests answered", "other failures", `"invalid: imp missing\n"`, `"overloaded\n"`}},
		{"one answer in four fails: no warning", func(ctx *fasthttp.RequestCtx) {
			if n.Add(1)%4 == 0 {
				ctx.Error("overloaded\n", 503)
				return
			}
			ctx.SetStatusCode(204)
		}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			url := serve(t, tc.handler)
			rep, err := Run(context.Background(), Config{Target: url, Rate: 200, Duration: 500 * time.Millisecond, Connections: 2, PoolSize: 10})
			if err != nil {
				t.Fatal(err)
			}
			if rep.Sent == 0 {
				t.Fatal("nothing sent")
			}
			if tc.want == nil {
				if rep.Warning != "" || rep.Broken() {
					t.Errorf("warning %q on a run with a quarter failed", rep.Warning)
				}
				return
			}
			if !rep.Broken() {
				t.Fatalf("no warning; outcomes %+v", rep.Outcomes)
			}
			for _, w := range tc.want {
				if !strings.Contains(rep.Warning, w) {
					t.Errorf("warning lacks %q:\n%s", w, rep.Warning)
				}
			}
			var text strings.Builder
			rep.WriteText(&text)
			if !strings.Contains(text.String(), rep.Warning) {
				t.Errorf("the text report lacks the warning:\n%s", text.String())
			}
		})
	}

	t.Run("nothing listens", func(t *testing.T) {
		ln, _ := net.Listen("tcp", "127.0.0.1:0")
		addr := ln.Addr().String()
		ln.Close()
		rep, err := Run(context.Background(), Config{Target: addr, Rate: 50, Duration: 200 * time.Millisecond, Connections: 2, PoolSize: 10})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(rep.Warning, "could not connect: is the server running, and is "+addr+" its exchange port?") {
			t.Errorf("warning %q", rep.Warning)
		}
	})
}

// The recorder keeps a bounded record whatever the server answers.
func TestFailuresBounded(t *testing.T) {
	r := &recorder{}
	for i := range 1000 {
		r.failed(400+i%200, []byte(strings.Repeat("x", 1000)+string(rune('a'+i%26))), nil)
	}
	if len(r.failures.kinds) > maxFailureKinds || len(r.failures.first) > maxFirstAnswers {
		t.Errorf("%d kinds, %d answers kept", len(r.failures.kinds), len(r.failures.first))
	}
	for _, a := range r.failures.first {
		if len(a.Body) > maxBodyBytes {
			t.Errorf("a body of %d bytes kept", len(a.Body))
		}
	}
	if w := r.failures.warning(1000, "http://h:1/openrtb2/bid", "1s"); !strings.Contains(w, "of 1000 requests answered") || !strings.Contains(w, "more kinds") {
		t.Errorf("warning %q", w)
	}
}
