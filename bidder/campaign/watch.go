package campaign

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"sync"
	"time"
)

// Watcher reloads a campaign file when it changes, or when asked to (SIGHUP).
//
// It polls rather than using inotify: polling works the same on every OS, on network file systems and
// for Kubernetes ConfigMaps (which swap a symlink), and a campaign file is one stat a second.
type Watcher struct {
	path     string
	interval time.Duration
	onChange func(*Set)
	onError  func(error)
	reload   chan struct{}

	mu       sync.Mutex
	baseline string // digest of the set in force when Run starts, if known

	afterPoll func() // tests: called after every poll, to wait for polls instead of sleeping
}

// NewWatcher returns a watcher of path that polls every interval (1s if not positive). onChange gets
// every freshly loaded, valid set; onError gets every change that failed to load, while the set in
// force stays in force. Both are called from Run's goroutine, one at a time; either may be nil.
func NewWatcher(path string, interval time.Duration, onChange func(*Set), onError func(error)) *Watcher {
	if interval <= 0 {
		interval = time.Second
	}
	if onChange == nil {
		onChange = func(*Set) {}
	}
	if onError == nil {
		onError = func(error) {}
	}
	return &Watcher{path: path, interval: interval, onChange: onChange, onError: onError, reload: make(chan struct{}, 1)}
}

// Baseline tells the watcher which set is in force, so that a change made between loading it and
// Run is reloaded too. Without it, Run takes the file as it finds it as the current version. Call
// before Run.
func (w *Watcher) Baseline(s *Set) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if s != nil {
		w.baseline = s.Digest
	}
}

// Reload asks Run to reload the file now, even if it looks unchanged. It never blocks; requests made
// while one is pending are merged.
func (w *Watcher) Reload() {
	select {
	case w.reload <- struct{}{}:
	default:
	}
}

// fingerprint is what a stat tells about a version of the file. Content is compared by digest only when
// it changes, so that an idle watcher reads nothing. The file's identity is part of it because editors
// and ConfigMaps replace files by renaming, which can keep size and (coarse) modification time.
type fingerprint struct {
	fi os.FileInfo // nil: none seen
}

func (f fingerprint) equal(g fingerprint) bool {
	if f.fi == nil || g.fi == nil {
		return f.fi == nil && g.fi == nil
	}
	return f.fi.ModTime().Equal(g.fi.ModTime()) && f.fi.Size() == g.fi.Size() && os.SameFile(f.fi, g.fi)
}

// Run polls until ctx is done.
func (w *Watcher) Run(ctx context.Context) {
	w.mu.Lock()
	st := watchState{digest: w.baseline}
	w.mu.Unlock()
	if st.digest == "" {
		// The file as found is the version in force; remember it without reporting it.
		if fi, err := os.Stat(w.path); err == nil {
			if data, err := os.ReadFile(w.path); err == nil {
				st.loaded = fingerprint{fi}
				st.polled = st.loaded
				st.digest = digest(data)
			}
		}
	}
	t := time.NewTicker(w.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			w.poll(&st, false)
		case <-w.reload:
			w.poll(&st, true)
		}
		if w.afterPoll != nil {
			w.afterPoll()
		}
	}
}

type watchState struct {
	loaded  fingerprint // the version last read
	polled  fingerprint // what the previous poll saw
	digest  string      // content digest of the version last read
	statErr string      // the stat error last reported, to report a missing file once
}

func (w *Watcher) poll(st *watchState, force bool) {
	fi, err := os.Stat(w.path)
	if err != nil {
		if force || err.Error() != st.statErr {
			st.statErr = err.Error()
			w.onError(fmt.Errorf("campaign file: %w (keeping the campaigns in force)", err))
		}
		st.polled = fingerprint{}
		return
	}
	st.statErr = ""
	fp := fingerprint{fi}
	if !force {
		if fp.equal(st.loaded) {
			st.polled = fp
			return
		}
		if !fp.equal(st.polled) {
			// Still changing, or changed since the last poll: wait until a writer that does not replace
			// the file atomically has finished, rather than report its half-written file as broken.
			st.polled = fp
			return
		}
	}
	st.polled = fp
	data, err := os.ReadFile(w.path)
	if err != nil {
		w.onError(fmt.Errorf("campaign file: %w (keeping the campaigns in force)", err))
		return
	}
	st.loaded = fp
	d := digest(data)
	if !force && d == st.digest {
		return // touched, not changed
	}
	st.digest = d
	set, err := Parse(data, w.path, formatOf(w.path))
	if err != nil {
		w.onError(err)
		return
	}
	w.onChange(set)
}

func digest(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}
