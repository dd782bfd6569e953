package campaign

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// deadline bounds every wait: generous for a loaded CI machine under -race, and never a sleep that
// an assertion depends on.
const deadline = 10 * time.Second

type watchRig struct {
	t       *testing.T
	path    string
	w       *Watcher
	changes chan *Set
	errs    chan error
	polls   atomic.Int64
	polled  chan struct{}
	stop    context.CancelFunc
	done    chan struct{}
}

func newWatchRig(t *testing.T, path string, baseline *Set) *watchRig {
	r := &watchRig{t: t, path: path, changes: make(chan *Set, 16), errs: make(chan error, 16), polled: make(chan struct{}, 1)}
	r.w = NewWatcher(path, time.Millisecond, func(s *Set) { r.changes <- s }, func(err error) { r.errs <- err })
	r.w.afterPoll = func() {
		r.polls.Add(1)
		select {
		case r.polled <- struct{}{}:
		default:
		}
	}
	r.w.Baseline(baseline)
	return r
}

func (r *watchRig) start() {
	ctx, cancel := context.WithCancel(context.Background())
	r.stop, r.done = cancel, make(chan struct{})
	go func() {
		defer close(r.done)
		r.w.Run(ctx)
	}()
	r.t.Cleanup(func() {
		cancel()
		<-r.done
	})
}

// campaignFile is a valid file whose size differs per id.
func campaignFile(id string) string {
	return fmt.Sprintf(`campaigns:
  - id: %s
    name: %s
    advertiser_domain: example.com
    creatives:
      - {id: b, type: banner, w: 300, h: 250, html: x, landing_url: "https://example.com/"}
    bid: {type: fixed_cpm, cpm: 1, max_bid: 2}
    budget: {daily: 10}
`, id, strings.Repeat("n", len(id)))
}

// write replaces the file atomically, as deployment tools should; the watcher's tolerance of
// in-place writers is not under test here.
func writeFile(t *testing.T, path, content string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func (r *watchRig) nextChange() *Set {
	r.t.Helper()
	select {
	case s := <-r.changes:
		return s
	case err := <-r.errs:
		r.t.Fatalf("want onChange, got onError: %v", err)
	case <-time.After(deadline):
		r.t.Fatal("no onChange before the deadline")
	}
	return nil
}

func (r *watchRig) nextError() error {
	r.t.Helper()
	select {
	case err := <-r.errs:
		return err
	case s := <-r.changes:
		r.t.Fatalf("want onError, got onChange with %s", s.Campaigns[0].ID)
	case <-time.After(deadline):
		r.t.Fatal("no onError before the deadline")
	}
	return nil
}

// quiet waits for a few more polls, then asserts that none of them reported anything.
func (r *watchRig) quiet() {
	r.t.Helper()
	target := r.polls.Load() + 3
	timeout := time.After(deadline)
	for r.polls.Load() < target {
		select {
		case <-r.polled:
		case <-timeout:
			r.t.Fatal("the watcher stopped polling")
		}
	}
	select {
	case s := <-r.changes:
		r.t.Fatalf("unexpected onChange with %s", s.Campaigns[0].ID)
	case err := <-r.errs:
		r.t.Fatalf("unexpected onError: %v", err)
	default:
	}
}

func wantID(t *testing.T, s *Set, id string) {
	t.Helper()
	if len(s.Campaigns) != 1 || s.ByID(id) == nil {
		t.Fatalf("got set %v, want campaign %s", s.Campaigns, id)
	}
}

func TestWatcher(t *testing.T) {
	path := filepath.Join(t.TempDir(), "campaigns.yaml")
	writeFile(t, path, campaignFile("c-1"))
	initial, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	r := newWatchRig(t, path, initial)
	r.start()
	r.quiet() // the set in force is the file: nothing to report

	writeFile(t, path, campaignFile("c-22"))
	wantID(t, r.nextChange(), "c-22")
	r.quiet()

	writeFile(t, path, strings.Replace(campaignFile("c-333"), "daily:", "dayly:", 1))
	err = r.nextError()
	if !strings.Contains(err.Error(), path+`: campaign "c-333": budget.dayly: unknown field`) {
		t.Errorf("onError: %v", err)
	}
	r.quiet() // reported once, and no onChange

	writeFile(t, path, campaignFile("c-4444"))
	wantID(t, r.nextChange(), "c-4444") // the next report is the fixed file, nothing in between

	// Touched but unchanged: no report.
	later := time.Now().Add(time.Hour)
	if err := os.Chtimes(path, later, later); err != nil {
		t.Fatal(err)
	}
	r.quiet()

	// SIGHUP: reload even though nothing changed.
	r.w.Reload()
	wantID(t, r.nextChange(), "c-4444")
	r.quiet()

	// Deleted: reported once; the set in force stays. Restored: loaded.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := r.nextError(); !os.IsNotExist(unwrapAll(err)) {
		t.Errorf("onError for a missing file: %v", err)
	}
	r.quiet()
	writeFile(t, path, campaignFile("c-55555"))
	wantID(t, r.nextChange(), "c-55555")

	r.stop()
	select {
	case <-r.done:
	case <-time.After(deadline):
		t.Fatal("Run did not return after the context was cancelled")
	}
}

func unwrapAll(err error) error {
	for {
		u, ok := err.(interface{ Unwrap() error })
		if !ok || u.Unwrap() == nil {
			return err
		}
		err = u.Unwrap()
	}
}

func TestWatcherBaseline(t *testing.T) {
	dir := t.TempDir()

	// A change between Load and Run is caught when the watcher knows the set in force.
	path := filepath.Join(dir, "a.yaml")
	writeFile(t, path, campaignFile("c-1"))
	initial, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, path, campaignFile("c-22"))
	r := newWatchRig(t, path, initial)
	r.start()
	wantID(t, r.nextChange(), "c-22")
	r.quiet()

	// Without a baseline, the file as Run finds it is the version in force.
	path = filepath.Join(dir, "b.json")
	writeFile(t, path, `{"campaigns": [{"id": "j", "advertiser_domain": "example.com",
		"creatives": [{"id": "b", "type": "banner", "w": 1, "h": 1, "html": "x", "landing_url": "https://example.com/"}],
		"bid": {"type": "fixed_cpm", "cpm": 1, "max_bid": 2}, "budget": {"daily": 10}}]}`)
	r = newWatchRig(t, path, nil)
	r.start()
	r.quiet()
	r.w.Reload() // the format still follows the extension
	wantID(t, r.nextChange(), "j")
}

func TestWatcherReloadNeverBlocks(t *testing.T) {
	w := NewWatcher(filepath.Join(t.TempDir(), "x.yaml"), 0, nil, nil)
	for range 100 {
		w.Reload() // no Run: must not block
	}
	if w.interval != time.Second {
		t.Errorf("default interval %v", w.interval)
	}
}
