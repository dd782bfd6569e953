package features

import (
	"bufio"
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/bytedance/sonic"
	"github.com/dgraph-io/ristretto/v2"
)

// sample is the built-in snapshot used when no file is given. Its non-"demo-" ids come from the
// IAB's public example bid requests in the OpenRTB 2.x specification, so that those requests,
// sent as-is, hit the store and segment targeting can be demonstrated:
//
//   - user 55816b39711f9b5acf3b90e313ed29e51665623f: user.id, simple banner and expandable examples
//   - user 545678765467876567898765678987654: user.buyeruid, expandable and video examples
//   - user ffffffd5135596709273b3a1a07e466ea2bf4fff: user.id, mobile example
//   - user 456789876567897654678987656789: user.id, video example
//   - publisher 8953 (foobar.com): simple banner and expandable examples
//   - publisher agltb3B1Yi1pbmNyDAsSA0FwcBiJkfTUCV (yahoo): mobile example
//   - publisher pub12345 (Publisher A): video example
//
// The "demo-" ids are ours. Segments, CTRs and dates are invented.
//
//go:embed sample.jsonl
var sample []byte

// sampleName stands in for a path in errors about the embedded sample.
const sampleName = "embedded sample.jsonl"

// maxLineBytes bounds one snapshot line. Users with thousands of segments make long lines; a line
// beyond this is an error rather than a silent truncation.
const maxLineBytes = 16 << 20

// LineError is a snapshot line that could not be used. Line counts from 1, blank lines included,
// so it matches what an editor shows.
type LineError struct {
	Line int
	Err  error
}

func (e *LineError) Error() string { return fmt.Sprintf("line %d: %v", e.Line, e.Err) }

func (e *LineError) Unwrap() error { return e.Err }

// snapshotLine is one line of the snapshot; Kind says which fields apply.
type snapshotLine struct {
	Kind     string    `json:"kind"`
	ID       string    `json:"id"`
	Segments []string  `json:"segments"`
	LastSeen time.Time `json:"last_seen"`
	CTR      float64   `json:"ctr"`
}

// LoadSnapshot reads a JSON Lines snapshot and adds its records to the store:
//
//	{"kind":"user","id":"u1","segments":["s1"],"last_seen":"2026-11-20T10:00:00Z"}
//	{"kind":"publisher","id":"8953","ctr":0.0021,"segments":["premium"]}
//
// Blank lines are skipped. Unknown fields are ignored, so that a newer exporter can add fields
// without stopping older bidders; everything else that is wrong (bad JSON, unknown kind, empty
// id, ctr outside [0,1], a field of the other kind) fails the whole load with a *LineError, and
// nothing from that snapshot is stored: a bad snapshot must stop a bidder from starting, not
// leave it half-informed. When an id repeats within a snapshot, its last line wins.
//
// Records are merged into what the store holds (a reload overwrites the ids it carries and
// leaves others to TTL and eviction). LoadSnapshot returns after every record is visible to
// lookups and checks that each is present: if the admission policy refused some (a cache's
// MaxCost is too small for the snapshot), the error wraps ErrNotAdmitted and n counts only the
// records that are present.
func (s *Store) LoadSnapshot(r io.Reader) (n int, err error) {
	if s == nil || s.closed.Load() {
		return 0, ErrClosed
	}
	b, err := parseSnapshot(r)
	if err != nil {
		return 0, err
	}
	return s.apply(b)
}

// LoadSnapshotFile is LoadSnapshot on a file.
func (s *Store) LoadSnapshotFile(path string) (int, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, fmt.Errorf("load features %s: %w", path, err)
	}
	defer f.Close()
	n, err := s.LoadSnapshot(f)
	if err != nil {
		return n, fmt.Errorf("load features %s: %w", path, err)
	}
	return n, nil
}

// LoadSample loads the embedded sample snapshot.
func (s *Store) LoadSample() (int, error) {
	n, err := s.LoadSnapshot(bytes.NewReader(sample))
	if err != nil {
		return n, fmt.Errorf("load features %s: %w", sampleName, err)
	}
	return n, nil
}

// entry is a parsed record waiting to be stored.
type entry[V any] struct {
	id   string
	rec  V
	cost int64
}

// batch is a whole parsed snapshot. Parsing everything before storing anything is what makes a
// bad line refuse the snapshot as a whole.
type batch struct {
	users   []entry[*UserRecord]
	pubs    []entry[*PublisherRecord]
	userAt  map[string]int // id -> index in users, so that a repeated id replaces, not duplicates
	pubAt   map[string]int
	segment map[string]string
}

func parseSnapshot(r io.Reader) (*batch, error) {
	b := &batch{
		userAt:  make(map[string]int),
		pubAt:   make(map[string]int),
		segment: make(map[string]string),
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxLineBytes)
	line := 0
	for sc.Scan() {
		line++
		raw := bytes.TrimSpace(sc.Bytes())
		if len(raw) == 0 {
			continue
		}
		if err := b.add(raw); err != nil {
			return nil, &LineError{Line: line, Err: err}
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, &LineError{Line: line + 1, Err: fmt.Errorf("longer than %d bytes", maxLineBytes)}
		}
		return nil, fmt.Errorf("read after line %d: %w", line, err)
	}
	return b, nil
}

func (b *batch) add(raw []byte) error {
	// A fresh value per line: decoding into a reused one would let this line share the previous
	// line's segment array. ConfigStd copies strings, so nothing aliases the scanner's buffer.
	var l snapshotLine
	if err := decodeLine(raw, &l); err != nil {
		return err
	}
	if l.ID == "" {
		return errors.New("missing id")
	}
	for i, seg := range l.Segments {
		if seg == "" {
			return fmt.Errorf("segment %d is empty", i)
		}
		l.Segments[i] = b.intern(seg)
	}
	if len(l.Segments) == 0 {
		// Keeps "no segments" one value, however the line spelt it.
		l.Segments = nil
	}
	switch l.Kind {
	case "user":
		if l.CTR != 0 {
			return errors.New(`"ctr" is a publisher field, this line is a user`)
		}
		rec := &UserRecord{Segments: l.Segments, LastSeen: l.LastSeen}
		putEntry(&b.users, b.userAt, entry[*UserRecord]{l.ID, rec, userCost(rec)})
	case "publisher":
		if !(l.CTR >= 0 && l.CTR <= 1) {
			return fmt.Errorf("ctr %v outside [0,1]", l.CTR)
		}
		if !l.LastSeen.IsZero() {
			return errors.New(`"last_seen" is a user field, this line is a publisher`)
		}
		rec := &PublisherRecord{CTR: l.CTR, Segments: l.Segments}
		putEntry(&b.pubs, b.pubAt, entry[*PublisherRecord]{l.ID, rec, publisherCost(rec)})
	case "":
		return errors.New(`missing "kind" (want "user" or "publisher")`)
	default:
		return fmt.Errorf("unknown kind %q (want \"user\" or \"publisher\")", l.Kind)
	}
	return nil
}

func decodeLine(raw []byte, l *snapshotLine) error {
	err := sonic.ConfigStd.Unmarshal(raw, l)
	if err == nil {
		return nil
	}
	// sonic's messages span several lines around a quoted excerpt of the input, which reads badly
	// in a one-line startup log. Bad lines are rare and end the load, so decode once more with
	// encoding/json for its one-line message.
	jerr := json.Unmarshal(raw, new(snapshotLine))
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(jerr, &syntax):
		return fmt.Errorf("invalid JSON at byte %d: %w", syntax.Offset, jerr)
	case errors.As(jerr, &typ) && typ.Field == "":
		return fmt.Errorf("JSON %s where an object expected", typ.Value)
	case errors.As(jerr, &typ):
		return fmt.Errorf("field %q: JSON %s where %s expected", typ.Field, typ.Value, typ.Type)
	case jerr != nil:
		return jerr
	}
	return fmt.Errorf("invalid JSON: %s", strings.Join(strings.Fields(err.Error()), " "))
}

// intern shares one copy of each segment id across the snapshot: millions of users carry a few
// hundred distinct segments.
func (b *batch) intern(s string) string {
	if c, ok := b.segment[s]; ok {
		return c
	}
	b.segment[s] = s
	return s
}

func putEntry[V any](list *[]entry[V], at map[string]int, e entry[V]) {
	if i, ok := at[e.id]; ok {
		(*list)[i] = e
		return
	}
	at[e.id] = len(*list)
	*list = append(*list, e)
}

func (s *Store) apply(b *batch) (int, error) {
	setAll(s.users, b.users, s.ttl)
	setAll(s.pubs, b.pubs, s.ttl)
	if s.closed.Load() {
		return 0, ErrClosed
	}
	users := countPresent(s.users, b.users)
	pubs := countPresent(s.pubs, b.pubs)
	n := users + pubs
	if missing := len(b.users) + len(b.pubs) - n; missing > 0 {
		s.notAdmitted.Add(uint64(missing))
		return n, fmt.Errorf("%w: %d of %d users and %d of %d publishers absent after loading "+
			"(cache MaxCost %d each; raise it or shrink the snapshot)",
			ErrNotAdmitted, len(b.users)-users, len(b.users), len(b.pubs)-pubs, len(b.pubs),
			s.users.MaxCost())
	}
	return n, nil
}

// setAll stores entries and waits until they are applied. ristretto's Set returns false when its
// write buffer is full (it drops the write rather than block); draining the buffer with Wait and
// retrying turns that into back-pressure, which a bulk load wants.
func setAll[V any](c *ristretto.Cache[string, V], es []entry[V], ttl time.Duration) {
	for _, e := range es {
		ok := c.SetWithTTL(e.id, e.rec, e.cost, ttl)
		for try := 0; !ok && try < setRetries; try++ {
			c.Wait()
			ok = c.SetWithTTL(e.id, e.rec, e.cost, ttl)
		}
		// A write still dropped is caught by countPresent.
	}
	c.Wait()
}

// countPresent counts the entries now in the cache. A Set that returned true may still have been
// refused by TinyLFU admission (only when the cache is full) or evicted by a later entry of the
// same load, so presence is checked rather than assumed. GetTTL is used because, unlike Get, it
// neither counts as a hit nor raises the key's access frequency.
func countPresent[V any](c *ristretto.Cache[string, V], es []entry[V]) int {
	n := 0
	for _, e := range es {
		if _, ok := c.GetTTL(e.id); ok {
			n++
		}
	}
	return n
}
