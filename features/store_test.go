package features

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// IAB OpenRTB example ids, as in sample.jsonl.
const (
	iabBannerUser = "55816b39711f9b5acf3b90e313ed29e51665623f"
	iabBannerPub  = "8953"
)

func newStore(t testing.TB, cfg Config) *Store {
	t.Helper()
	s, err := New(cfg)
	if err != nil {
		t.Fatalf("New(%+v): %v", cfg, err)
	}
	t.Cleanup(s.Close)
	return s
}

func sampleStore(t testing.TB) *Store {
	t.Helper()
	s := newStore(t, Config{})
	if _, err := s.LoadSample(); err != nil {
		t.Fatalf("LoadSample: %v", err)
	}
	return s
}

// usersSnapshot is n user lines with ids prefix0..prefix(n-1).
func usersSnapshot(prefix string, n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, `{"kind":"user","id":"%s%d","segments":["seg-%d","common"],"last_seen":"2026-11-20T10:00:00Z"}`+"\n",
			prefix, i, i%50)
	}
	return b.String()
}

func TestLoadSampleLookups(t *testing.T) {
	s := sampleStore(t)

	users := []struct {
		id       string
		segments []string
	}{
		{iabBannerUser, []string{"auto-intender", "sports"}},
		{"545678765467876567898765678987654", []string{"auto-intender", "auto-enthusiast"}},
		{"ffffffd5135596709273b3a1a07e466ea2bf4fff", []string{"travel-intender", "age-35-44"}},
		{"demo-user-3", nil},
	}
	for _, tc := range users {
		t.Run("user/"+tc.id, func(t *testing.T) {
			u, ok := s.User(tc.id)
			if !ok || u == nil {
				t.Fatalf("User(%q) missed", tc.id)
			}
			if !slices.Equal(u.Segments, tc.segments) {
				t.Errorf("segments = %q, want %q", u.Segments, tc.segments)
			}
			if u.LastSeen.IsZero() {
				t.Error("LastSeen is zero")
			}
		})
	}

	pubs := []struct {
		id       string
		ctr      float64
		segments []string
	}{
		{iabBannerPub, 0.002, []string{"premium"}},
		{"agltb3B1Yi1pbmNyDAsSA0FwcBiJkfTUCV", 0.0035, []string{"premium", "in-app"}},
		{"pub12345", 0.0012, []string{"brand-safe", "video"}},
	}
	for _, tc := range pubs {
		t.Run("publisher/"+tc.id, func(t *testing.T) {
			p, ok := s.Publisher(tc.id)
			if !ok || p == nil {
				t.Fatalf("Publisher(%q) missed", tc.id)
			}
			if p.CTR != tc.ctr || !slices.Equal(p.Segments, tc.segments) {
				t.Errorf("got %+v, want ctr %v segments %q", *p, tc.ctr, tc.segments)
			}
		})
	}

	want := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	if u, _ := s.User(iabBannerUser); !u.LastSeen.Equal(want) {
		t.Errorf("LastSeen = %v, want %v", u.LastSeen, want)
	}
}

func TestLoadSampleCount(t *testing.T) {
	s := newStore(t, Config{})
	n, err := s.LoadSample()
	if err != nil {
		t.Fatal(err)
	}
	lines := 0
	for l := range strings.Lines(string(sample)) {
		if strings.TrimSpace(l) != "" {
			lines++
		}
	}
	if n != lines {
		t.Errorf("LoadSample = %d, want %d (one per record line)", n, lines)
	}
}

func TestMisses(t *testing.T) {
	s := sampleStore(t)
	tests := []struct {
		name string
		look func() bool
	}{
		{"empty user id", func() bool { _, ok := s.User(""); return ok }},
		{"empty publisher id", func() bool { _, ok := s.Publisher(""); return ok }},
		{"unknown user", func() bool { _, ok := s.User("nobody"); return ok }},
		{"unknown publisher", func() bool { _, ok := s.Publisher("nowhere"); return ok }},
		// Kinds live in separate caches: the same id under the other kind is a miss.
		{"publisher id as user", func() bool { _, ok := s.User(iabBannerPub); return ok }},
		{"user id as publisher", func() bool { _, ok := s.Publisher(iabBannerUser); return ok }},
		{"id differing in case", func() bool { _, ok := s.User(strings.ToUpper(iabBannerUser)); return ok }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.look() {
				t.Error("hit, want miss")
			}
		})
	}

	// Not a latency assertion (the benchmarks measure that): a bound loose enough for -race on a
	// loaded machine that still catches a miss which waits on something.
	start := time.Now()
	for i := range 10000 {
		if _, ok := s.User("nobody" + string(rune('a'+i%26))); ok {
			t.Fatal("unexpected hit")
		}
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("10000 misses took %v", d)
	}
}

func TestLoadSnapshotErrors(t *testing.T) {
	good := `{"kind":"user","id":"u1","segments":["s1"],"last_seen":"2026-11-20T10:00:00Z"}` + "\n"
	tests := []struct {
		name  string
		input string
		line  int
		want  string // in the error text
	}{
		{"not json", good + "\n{nope\n", 3, "line 3: invalid JSON at byte 2"},
		{"truncated", good + `{"kind":"user","id":"u2"`, 2, "line 2: invalid JSON"},
		{"trailing garbage", `{"kind":"user","id":"u2"} x` + "\n", 1, "line 1: invalid JSON at byte 27"},
		{"unknown kind", good + `{"kind":"campaign","id":"c1"}`, 2, `unknown kind "campaign"`},
		{"missing kind", `{"id":"u1"}`, 1, `missing "kind"`},
		{"missing id", good + `{"kind":"publisher","ctr":0.1}`, 2, "missing id"},
		{"empty segment", `{"kind":"user","id":"u1","segments":["a",""]}`, 1, "segment 1 is empty"},
		{"segments not strings", `{"kind":"user","id":"u1","segments":[1]}`, 1, `field "segments"`},
		{"ctr negative", `{"kind":"publisher","id":"p","ctr":-0.1}`, 1, "outside [0,1]"},
		{"ctr above one", `{"kind":"publisher","id":"p","ctr":1.5}`, 1, "outside [0,1]"},
		{"ctr on user", `{"kind":"user","id":"u","ctr":0.1}`, 1, "publisher field"},
		{"last_seen on publisher", `{"kind":"publisher","id":"p","last_seen":"2026-11-20T10:00:00Z"}`, 1, "user field"},
		{"bad time", `{"kind":"user","id":"u","last_seen":"yesterday"}`, 1, `parsing time "yesterday"`},
		{"null line", good + "null\n", 2, `missing id`},
		{"array line", "[]\n", 1, "JSON array where an object expected"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t, Config{})
			n, err := s.LoadSnapshot(strings.NewReader(tc.input))
			if err == nil {
				t.Fatalf("loaded %d records, want an error", n)
			}
			if n != 0 {
				t.Errorf("n = %d, want 0", n)
			}
			var le *LineError
			if !errors.As(err, &le) {
				t.Fatalf("error %q is not a *LineError", err)
			}
			if le.Line != tc.line {
				t.Errorf("line = %d, want %d (%v)", le.Line, tc.line, err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not contain %q", err, tc.want)
			}
			// All or nothing: the good lines before the bad one are not stored either.
			s.Wait()
			if _, ok := s.User("u1"); ok {
				t.Error("u1 stored from a snapshot that failed to load")
			}
		})
	}
}

func TestLoadSnapshotFileErrorNamesFileAndLine(t *testing.T) {
	s := newStore(t, Config{})
	path := filepath.Join(t.TempDir(), "features.jsonl")
	data := `{"kind":"user","id":"u1"}` + "\n\n" + `{"kind":"user","id":"u2","segments":"oops"}` + "\n"
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := s.LoadSnapshotFile(path)
	if err == nil {
		t.Fatal("no error")
	}
	if want := "load features " + path + ": line 3: "; !strings.HasPrefix(err.Error(), want) {
		t.Errorf("error %q, want prefix %q", err, want)
	}

	_, err = s.LoadSnapshotFile(filepath.Join(t.TempDir(), "missing.jsonl"))
	if !errors.Is(err, os.ErrNotExist) || !strings.HasPrefix(err.Error(), "load features ") {
		t.Errorf("missing file: error %v", err)
	}
}

func TestLoadSnapshotFile(t *testing.T) {
	s := newStore(t, Config{})
	path := filepath.Join(t.TempDir(), "features.jsonl")
	if err := os.WriteFile(path, []byte(usersSnapshot("f", 100)), 0o644); err != nil {
		t.Fatal(err)
	}
	n, err := s.LoadSnapshotFile(path)
	if err != nil || n != 100 {
		t.Fatalf("LoadSnapshotFile = %d, %v; want 100, nil", n, err)
	}
	if _, ok := s.User("f99"); !ok {
		t.Error("f99 missed")
	}
}

func TestLoadSnapshotFormat(t *testing.T) {
	tests := []struct {
		name  string
		input string
		n     int
		check func(*testing.T, *Store)
	}{
		{"empty", "", 0, nil},
		{"blank lines only", "\n  \n\t\n", 0, nil},
		{"crlf and blank lines", "\r\n" + `{"kind":"user","id":"u1","segments":["a"]}` + "\r\n\r\n", 1, func(t *testing.T, s *Store) {
			if u, ok := s.User("u1"); !ok || !slices.Equal(u.Segments, []string{"a"}) {
				t.Errorf("u1 = %+v, %v", u, ok)
			}
		}},
		{"no trailing newline", `{"kind":"publisher","id":"p1","ctr":0.5}`, 1, func(t *testing.T, s *Store) {
			if p, ok := s.Publisher("p1"); !ok || p.CTR != 0.5 {
				t.Errorf("p1 = %+v, %v", p, ok)
			}
		}},
		{"unknown field ignored", `{"kind":"user","id":"u1","freq":3}`, 1, nil},
		{"repeated id: last wins, counted once",
			`{"kind":"user","id":"u1","segments":["old"]}` + "\n" + `{"kind":"user","id":"u1","segments":["new"]}`, 1,
			func(t *testing.T, s *Store) {
				if u, ok := s.User("u1"); !ok || !slices.Equal(u.Segments, []string{"new"}) {
					t.Errorf("u1 = %+v, %v; want segments [new]", u, ok)
				}
			}},
		{"same id, both kinds", `{"kind":"user","id":"x"}` + "\n" + `{"kind":"publisher","id":"x"}`, 2, func(t *testing.T, s *Store) {
			_, u := s.User("x")
			_, p := s.Publisher("x")
			if !u || !p {
				t.Errorf("user hit %v, publisher hit %v; want both", u, p)
			}
		}},
		{"escaped strings", `{"kind":"user","id":"caf\u00e9","segments":["a\"b"]}`, 1, func(t *testing.T, s *Store) {
			if u, ok := s.User("café"); !ok || u.Segments[0] != `a"b` {
				t.Errorf("café = %+v, %v", u, ok)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t, Config{})
			n, err := s.LoadSnapshot(strings.NewReader(tc.input))
			if err != nil || n != tc.n {
				t.Fatalf("LoadSnapshot = %d, %v; want %d, nil", n, err, tc.n)
			}
			if tc.check != nil {
				tc.check(t, s)
			}
		})
	}
}

func TestLongLines(t *testing.T) {
	s := newStore(t, Config{})
	segs := make([]string, 20000) // ~300 KB: well past bufio.Scanner's 64 KB default
	for i := range segs {
		segs[i] = fmt.Sprintf(`"segment-%05d"`, i)
	}
	long := `{"kind":"user","id":"long","segments":[` + strings.Join(segs, ",") + `]}`
	n, err := s.LoadSnapshot(strings.NewReader(long + "\n"))
	if err != nil || n != 1 {
		t.Fatalf("LoadSnapshot = %d, %v; want 1, nil", n, err)
	}
	if u, ok := s.User("long"); !ok || len(u.Segments) != len(segs) {
		t.Fatalf("long user: ok %v", ok)
	}

	tooLong := `{"kind":"user","id":"x","segments":["` + strings.Repeat("a", maxLineBytes) + `"]}`
	_, err = s.LoadSnapshot(strings.NewReader("\n" + tooLong + "\n"))
	var le *LineError
	if !errors.As(err, &le) || le.Line != 2 {
		t.Fatalf("too long line: error %v, want a *LineError for line 2", err)
	}
}

// Segment strings must not alias the scanner's buffer, which is overwritten line by line.
func TestStringsDoNotAliasReadBuffer(t *testing.T) {
	s := newStore(t, Config{})
	var b strings.Builder
	for i := range 2000 {
		fmt.Fprintf(&b, `{"kind":"user","id":"u%d","segments":["s%d"]}`+"\n", i, i)
	}
	if _, err := s.LoadSnapshot(strings.NewReader(b.String())); err != nil {
		t.Fatal(err)
	}
	for i := range 2000 {
		u, ok := s.User(fmt.Sprintf("u%d", i))
		if !ok || u.Segments[0] != fmt.Sprintf("s%d", i) {
			t.Fatalf("u%d = %+v, %v", i, u, ok)
		}
	}
}

func TestReloadOverwritesAndMerges(t *testing.T) {
	s := newStore(t, Config{})
	first := `{"kind":"user","id":"a","segments":["v1"]}` + "\n" + `{"kind":"user","id":"b","segments":["v1"]}`
	second := `{"kind":"user","id":"a","segments":["v2"]}` + "\n" + `{"kind":"user","id":"c","segments":["v2"]}`
	for _, snap := range []string{first, second} {
		if _, err := s.LoadSnapshot(strings.NewReader(snap)); err != nil {
			t.Fatal(err)
		}
	}
	for id, want := range map[string]string{"a": "v2", "b": "v1", "c": "v2"} {
		if u, ok := s.User(id); !ok || u.Segments[0] != want {
			t.Errorf("User(%q) = %+v, %v; want segment %s", id, u, ok, want)
		}
	}
}

// A snapshot well past ristretto's 32Ki-entry write buffer exercises the dropped-Set retry; it
// must still be wholly present, because it fits in MaxCost.
func TestLargeSnapshotFullyPresent(t *testing.T) {
	const n = 60000
	s := newStore(t, Config{})
	got, err := s.LoadSnapshot(strings.NewReader(usersSnapshot("big", n)))
	if err != nil || got != n {
		t.Fatalf("LoadSnapshot = %d, %v; want %d, nil", got, err, n)
	}
	for i := range n {
		if _, ok := s.User(fmt.Sprintf("big%d", i)); !ok {
			t.Fatalf("big%d missing after a successful load", i)
		}
	}
	st := s.Metrics()
	if st.Users.KeysAdded != n || st.NotAdmitted != 0 {
		t.Errorf("stats %+v: want %d keys added, none not admitted", st.Users, n)
	}
}

func TestSnapshotLargerThanMaxCostIsReported(t *testing.T) {
	const n = 1000
	s := newStore(t, Config{MaxCost: 20000}) // room for roughly a tenth of the records
	got, err := s.LoadSnapshot(strings.NewReader(usersSnapshot("x", n)))
	if !errors.Is(err, ErrNotAdmitted) {
		t.Fatalf("error %v, want ErrNotAdmitted", err)
	}
	if got <= 0 || got >= n {
		t.Fatalf("n = %d, want between 0 and %d exclusive", got, n)
	}
	present := 0
	for i := range n {
		if _, ok := s.User(fmt.Sprintf("x%d", i)); ok {
			present++
		}
	}
	if present != got {
		t.Errorf("LoadSnapshot reported %d loaded, %d are present", got, present)
	}
	if st := s.Metrics(); st.NotAdmitted != uint64(n-got) {
		t.Errorf("NotAdmitted = %d, want %d", st.NotAdmitted, n-got)
	}
}

func TestTTLExpiry(t *testing.T) {
	const ttl = 200 * time.Millisecond
	s := newStore(t, Config{TTL: ttl})
	start := time.Now()
	if _, err := s.LoadSample(); err != nil {
		t.Fatal(err)
	}
	_, userHit := s.User(iabBannerUser)
	_, pubHit := s.Publisher(iabBannerPub)
	if time.Since(start) < ttl {
		// Only meaningful if the machine did not stall past the TTL already.
		if !userHit || !pubHit {
			t.Fatalf("right after load: user hit %v, publisher hit %v", userHit, pubHit)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, u := s.User(iabBannerUser)
		_, p := s.Publisher(iabBannerPub)
		if !u && !p {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("records still visible %v after a %v TTL", time.Since(start), ttl)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if since := time.Since(start); since < ttl {
		t.Errorf("records expired after %v, before the %v TTL", since, ttl)
	}
}

func TestNilStore(t *testing.T) {
	var s *Store
	if u, ok := s.User(iabBannerUser); ok || u != nil {
		t.Error("nil store: User hit")
	}
	if p, ok := s.Publisher(iabBannerPub); ok || p != nil {
		t.Error("nil store: Publisher hit")
	}
	if n, err := s.LoadSample(); !errors.Is(err, ErrClosed) || n != 0 {
		t.Errorf("nil store: LoadSample = %d, %v", n, err)
	}
	if st := s.Metrics(); st != (Stats{}) {
		t.Errorf("nil store: Metrics = %+v", st)
	}
	s.Wait()
	s.Close()

	// What the bidder does: a nil *Store behind its Features interface.
	var f interface {
		User(string) (*UserRecord, bool)
	} = s
	if _, ok := f.User("x"); ok {
		t.Error("nil store via interface: hit")
	}
}

func TestClosedStore(t *testing.T) {
	s, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.LoadSample(); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s.Close() // idempotent
	if _, ok := s.User(iabBannerUser); ok {
		t.Error("closed store: User hit")
	}
	if _, err := s.LoadSample(); !errors.Is(err, ErrClosed) {
		t.Errorf("closed store: LoadSample error %v, want ErrClosed", err)
	}
	s.Wait()
	_ = s.Metrics()
}

func TestNewConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"zero", Config{}, true},
		{"small", Config{MaxCost: 1, NumCounters: 1}, true},
		{"ttl", Config{TTL: time.Hour}, true},
		{"negative MaxCost", Config{MaxCost: -1}, false},
		{"negative TTL", Config{TTL: -time.Second}, false},
		{"negative NumCounters", Config{NumCounters: -1}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := New(tc.cfg)
			if (err == nil) != tc.ok {
				t.Fatalf("New(%+v) error %v, want ok=%v", tc.cfg, err, tc.ok)
			}
			s.Close()
		})
	}
}

func TestMetricsDisabled(t *testing.T) {
	s := newStore(t, Config{DisableMetrics: true})
	if _, err := s.LoadSample(); err != nil {
		t.Fatal(err)
	}
	if _, ok := s.User(iabBannerUser); !ok {
		t.Fatal("miss")
	}
	st := s.Metrics()
	if st.Hits != 0 || st.KeysAdded != 0 || st.Users.RemainingCost >= DefaultMaxCost {
		t.Errorf("stats with metrics disabled: %+v", st)
	}
}

func TestMetrics(t *testing.T) {
	s := sampleStore(t)
	for range 3 {
		s.User(iabBannerUser)
	}
	s.User("nobody")
	s.Publisher(iabBannerPub)
	s.Publisher("nowhere")
	s.User("") // short-circuits before the cache: not a cache miss

	st := s.Metrics()
	if st.Users.Hits != 3 || st.Users.Misses != 1 || st.Publishers.Hits != 1 || st.Publishers.Misses != 1 {
		t.Errorf("users %+v publishers %+v", st.Users, st.Publishers)
	}
	if st.Hits != 4 || st.Misses != 2 {
		t.Errorf("totals: hits %d misses %d, want 4 and 2", st.Hits, st.Misses)
	}
	if st.Users.KeysAdded != 7 || st.Publishers.KeysAdded != 4 || st.KeysAdded != 11 {
		t.Errorf("keys added: users %d publishers %d total %d", st.Users.KeysAdded, st.Publishers.KeysAdded, st.KeysAdded)
	}
	if st.Users.RemainingCost <= 0 || st.Users.RemainingCost >= DefaultMaxCost {
		t.Errorf("users remaining cost %d", st.Users.RemainingCost)
	}
}

// Lookups sit on the bid path: they must not allocate. (ristretto's access-frequency buffer
// allocates a fresh 64-key batch after handing a full one to its policy, at most once per 64 Gets
// on a P; AllocsPerRun's per-run average truncates that to 0, and the benchmarks show it as
// about 1 B/op.)
func TestLookupsDoNotAllocate(t *testing.T) {
	s := sampleStore(t)
	tests := []struct {
		name string
		fn   func()
	}{
		{"User hit", func() { s.User(iabBannerUser) }},
		{"User miss", func() { s.User("nobody") }},
		{"User empty", func() { s.User("") }},
		{"Publisher hit", func() { s.Publisher(iabBannerPub) }},
		{"Publisher miss", func() { s.Publisher("nowhere") }},
		{"nil store", func() { (*Store)(nil).User(iabBannerUser) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if n := testing.AllocsPerRun(1000, tc.fn); n != 0 {
				t.Errorf("%v allocations per lookup, want 0", n)
			}
		})
	}
}

// Run with -race: lookups in parallel with snapshot loads (new keys and overwrites).
func TestConcurrentLookupsDuringLoad(t *testing.T) {
	s := sampleStore(t)
	snap := usersSnapshot("c", 5000)

	stop := make(chan struct{})
	var readers sync.WaitGroup
	for range 8 {
		readers.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				// Sample records stay present throughout: a load only adds and overwrites.
				u, ok := s.User(iabBannerUser)
				if !ok || len(u.Segments) != 2 {
					t.Errorf("sample user lost during load: %+v, %v", u, ok)
					return
				}
				if p, ok := s.Publisher(iabBannerPub); !ok || p.CTR != 0.002 {
					t.Errorf("sample publisher lost during load: %+v, %v", p, ok)
					return
				}
				if u, ok := s.User(fmt.Sprintf("c%d", i%5000)); ok && len(u.Segments) != 2 {
					t.Errorf("torn record %+v", u)
					return
				}
				_ = s.Metrics().Hits
			}
		})
	}

	var loaders sync.WaitGroup
	for range 2 {
		loaders.Go(func() {
			for range 3 {
				if n, err := s.LoadSnapshot(strings.NewReader(snap)); err != nil || n != 5000 {
					t.Errorf("LoadSnapshot = %d, %v", n, err)
				}
			}
		})
	}
	loaders.Wait()
	close(stop)
	readers.Wait()

	for i := range 5000 {
		if _, ok := s.User(fmt.Sprintf("c%d", i)); !ok {
			t.Fatalf("c%d missing after loads", i)
		}
	}
}
