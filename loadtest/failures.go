package loadtest

import (
	"cmp"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"unicode/utf8"
)

// A run whose requests mostly fail measures nothing about a bidder: its latencies are those of an
// error page or of a refused connection. The generator keeps what the failures said, so that such a
// run is reported as broken with the reason instead of as a fast, bid-less run.

// maxFailureKinds bounds what is kept of failures: statuses and transport errors are few in any
// real run, and a server answering a different status every time must not grow the recorder.
const (
	maxFailureKinds = 32
	maxFirstAnswers = 3   // distinct answers kept with their body
	maxBodyBytes    = 200 // of each kept body
)

// FailedAnswer is one distinct failure: a 4xx/5xx status with the start of its body, or a transport
// error, and how many requests met it.
type FailedAnswer struct {
	Status int    `json:"status,omitempty"` // 0 for a transport error
	Body   string `json:"body,omitempty"`
	Error  string `json:"error,omitempty"`
	Count  int64  `json:"count"`
}

// failures is the recorder's record of failed requests (guarded by the recorder's mutex).
type failures struct {
	kinds map[string]int64 // "404", "connect", "timeout", "error" → count
	first []FailedAnswer
	other int64 // failures of kinds past maxFailureKinds
}

// failed records a request answered with a 4xx/5xx status (err nil) or failed in transport.
func (r *recorder) failed(status int, body []byte, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	f := &r.failures
	kind, msg := "", ""
	if err != nil {
		status, body = 0, nil
		msg = err.Error()
		switch classify(err, 0) {
		case outConnect:
			kind = "connect"
		case outTimeout:
			kind = "timeout"
		default:
			kind = "error"
		}
	} else {
		kind = fmt.Sprint(status)
		if len(body) > maxBodyBytes {
			body = body[:maxBodyBytes]
			for len(body) > 0 && !utf8.Valid(body) {
				body = body[:len(body)-1]
			}
		}
	}
	if f.kinds == nil {
		f.kinds = map[string]int64{}
	}
	if _, ok := f.kinds[kind]; ok || len(f.kinds) < maxFailureKinds {
		f.kinds[kind]++
	} else {
		f.other++
	}
	for i := range f.first {
		a := &f.first[i]
		if a.Status == status && a.Body == string(body) && a.Error == msg {
			a.Count++
			return
		}
	}
	if len(f.first) < maxFirstAnswers {
		f.first = append(f.first, FailedAnswer{Status: status, Body: string(body), Error: msg, Count: 1})
	}
}

// warning is the warning of a run where more than half the requests sent failed (4xx, 5xx or a
// transport error), or "": it names the most common failure with a hint of its usual cause, and the
// first distinct answers.
func (f *failures) warning(sent int64, target string, timeout string) string {
	var failed int64
	type kind struct {
		name string
		n    int64
	}
	var kinds []kind
	for k, n := range f.kinds {
		failed += n
		kinds = append(kinds, kind{k, n})
	}
	failed += f.other
	if sent <= 0 || 2*failed <= sent {
		return ""
	}
	slices.SortFunc(kinds, func(a, b kind) int {
		if c := cmp.Compare(b.n, a.n); c != 0 {
			return c
		}
		return strings.Compare(a.name, b.name)
	})
	top := kinds[0]
	host, bidURL := target, target
	if u, err := url.Parse(target); err == nil && u.Host != "" {
		host = u.Host
		bidURL = u.Scheme + "://" + u.Host + BidPath
	}
	var what, hint string
	switch top.name {
	case "connect":
		what, hint = "could not connect", "is the server running, and is "+host+" its exchange port?"
	case "timeout":
		what, hint = "timed out", "the target did not answer within --timeout ("+timeout+")"
	case "error":
		what, hint = "failed in transport", "see the errors below"
	case "404", "405", "501":
		what, hint = "answered "+top.name, "is --target the bid endpoint, "+bidURL+"?"
	case "400", "422":
		what, hint = "answered "+top.name, "the target refuses the requests: is it an OpenRTB 2.5/2.6 bid endpoint? Its answers below say why"
	case "401", "403":
		what, hint = "answered "+top.name, "the target wants credentials this generator does not send"
	case "413":
		what, hint = "answered 413", "the target's body limit is below the requests' size"
	default:
		what = "answered " + top.name
		if top.name >= "500" {
			hint = "the target fails: see its logs"
		} else {
			hint = "see the answers below"
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "WARNING: this run measured failures, not a bidder: %d of %d requests %s: %s", top.n, sent, what, hint)
	if rest := failed - top.n; rest > 0 {
		fmt.Fprintf(&b, " (and %d other failures:", rest)
		for _, k := range kinds[1:] {
			fmt.Fprintf(&b, " %s %d", k.name, k.n)
		}
		if f.other > 0 {
			fmt.Fprintf(&b, " more kinds %d", f.other)
		}
		b.WriteString(")")
	}
	for _, a := range f.first {
		if a.Status != 0 {
			fmt.Fprintf(&b, "\n  answered %d (%d×): %q", a.Status, a.Count, a.Body)
		} else {
			fmt.Fprintf(&b, "\n  error (%d×): %s", a.Count, a.Error)
		}
	}
	return b.String()
}

// Broken reports whether the run (in compare mode, any target's) carries a warning that most of its
// requests failed.
func (r *Report) Broken() bool {
	if r.Warning != "" {
		return true
	}
	for _, t := range r.Targets {
		if t.Warning != "" {
			return true
		}
	}
	return false
}
