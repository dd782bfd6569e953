// Package features is the bidder's in-memory feature store: what is known about a user (audience
// segments, recency) and about a publisher (observed CTR, inventory labels), consulted once per bid
// request.
//
// The request path only reads. Records arrive in bulk from a snapshot file (JSON Lines, see
// LoadSnapshot) or, with no file, from the embedded sample so that `rtb serve` can demonstrate
// segment targeting out of the box. Lookups never block and never do I/O: a key that is not in
// memory is a miss, and a miss means "no information", not "wait".
//
// Each kind of record lives in its own ristretto cache so that kinds neither share keys nor compete
// for each other's space. Frequency caps (Caps: confirmed impressions from Kafka plus this bidder's
// pending bids) and online CTR estimates (CTRs: Beta-smoothed per campaign and campaign × segment)
// are separate types, fed by an Updater that reads every partition of rtb.impressions and
// rtb.clicks (fan-out, no consumer group) from a lookback on, so every bidder caps every user.
package features

import (
	"errors"
	"fmt"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/dgraph-io/ristretto/v2"
)

// UserRecord is what we know about a user, keyed by the OpenRTB user.id or user.buyeruid.
//
// Records returned by Store are shared between goroutines: treat them as read-only.
type UserRecord struct {
	Segments []string  // audience segment ids, e.g. "auto-intender"
	LastSeen time.Time // recency
}

// PublisherRecord is what we know about a publisher, keyed by the OpenRTB site/app publisher.id.
//
// Records returned by Store are shared between goroutines: treat them as read-only.
type PublisherRecord struct {
	CTR      float64  // observed click-through rate of this publisher's inventory (0 = unknown)
	Segments []string // inventory quality/brand-safety labels, e.g. "premium"
}

// Config configures a Store. The zero value is usable.
type Config struct {
	// MaxCost bounds each cache (users, publishers) separately, in approximate bytes of record
	// memory. Default DefaultMaxCost. A snapshot whose records of one kind cost more than this is
	// not fully admitted, and LoadSnapshot says so.
	MaxCost int64
	// TTL is how long a loaded record stays visible; 0 = until evicted or overwritten. A reload
	// refreshes the TTL of every record it carries, so stale users age out between snapshots.
	TTL time.Duration
	// NumCounters is ristretto's number of admission frequency counters per cache. Default:
	// derived from MaxCost (about 8 per expected record), which ristretto's authors suggest
	// sizing near 10x the number of items held.
	NumCounters int64
	// DisableMetrics turns off ristretto's counters, leaving Stats with only NotAdmitted and
	// RemainingCost. The counters are on by default; their cost is that every lookup of one key
	// increments the same atomic, so a hot key (a big publisher) read from many cores contends
	// on one cache line (~15% slower measured on 2 cores; expect more on large machines).
	DisableMetrics bool
}

// DefaultMaxCost is the per-cache MaxCost when Config.MaxCost is 0: room for about 170,000
// users with two segments each, plenty for a single-machine `rtb serve`.
const DefaultMaxCost = 32 << 20

// Sizing constants for record cost. Ristretto is told to ignore its own per-item cost
// (IgnoreInternalCost) so that MaxCost means one thing; the overhead is folded in here instead.
const (
	// entryOverhead approximates ristretto's bookkeeping per key (store item, policy cost map
	// entry, expiry bucket entry).
	entryOverhead   = 96
	stringHeader    = int64(unsafe.Sizeof(""))
	userRecordSize  = int64(unsafe.Sizeof(UserRecord{}))
	pubRecordSize   = int64(unsafe.Sizeof(PublisherRecord{}))
	avgCostForSizes = 128 // expected cost of a typical record, to derive NumCounters
	bufferItems     = 64  // ristretto's recommended Get buffer size
	// setRetries bounds how often a Set dropped by a full write buffer is retried after draining
	// it, so that a Close racing a load ends the load instead of spinning.
	setRetries = 100
)

// Store is the feature store. All methods are safe for concurrent use, and a nil *Store behaves
// as an empty store, so the bidder can run without features.
type Store struct {
	users *ristretto.Cache[string, *UserRecord]
	pubs  *ristretto.Cache[string, *PublisherRecord]
	ttl   time.Duration

	// notAdmitted counts snapshot records that were not present after their load finished
	// (rejected by the admission policy, evicted by later records of the same load, or dropped).
	notAdmitted atomic.Uint64
	closed      atomic.Bool
}

// New creates an empty Store. Close it when done: each cache runs background goroutines.
func New(cfg Config) (*Store, error) {
	if cfg.MaxCost < 0 {
		return nil, fmt.Errorf("features: MaxCost %d is negative", cfg.MaxCost)
	}
	if cfg.TTL < 0 {
		// ristretto silently discards a Set with a negative TTL; refuse instead of loading nothing.
		return nil, fmt.Errorf("features: TTL %v is negative", cfg.TTL)
	}
	if cfg.NumCounters < 0 {
		return nil, fmt.Errorf("features: NumCounters %d is negative", cfg.NumCounters)
	}
	if cfg.MaxCost == 0 {
		cfg.MaxCost = DefaultMaxCost
	}
	if cfg.NumCounters == 0 {
		cfg.NumCounters = max(cfg.MaxCost*8/avgCostForSizes, 1024)
	}
	users, err := newCache[*UserRecord](cfg)
	if err != nil {
		return nil, fmt.Errorf("features: user cache: %w", err)
	}
	pubs, err := newCache[*PublisherRecord](cfg)
	if err != nil {
		users.Close()
		return nil, fmt.Errorf("features: publisher cache: %w", err)
	}
	return &Store{users: users, pubs: pubs, ttl: cfg.TTL}, nil
}

func newCache[V any](cfg Config) (*ristretto.Cache[string, V], error) {
	return ristretto.NewCache(&ristretto.Config[string, V]{
		NumCounters:        cfg.NumCounters,
		MaxCost:            cfg.MaxCost,
		BufferItems:        bufferItems,
		Metrics:            !cfg.DisableMetrics,
		IgnoreInternalCost: true,
	})
}

// User returns the record for a user id. It never blocks; "" and a nil Store are misses.
func (s *Store) User(id string) (*UserRecord, bool) {
	if s == nil || id == "" {
		return nil, false
	}
	return s.users.Get(id)
}

// Publisher returns the record for a publisher id. It never blocks; "" and a nil Store are misses.
func (s *Store) Publisher(id string) (*PublisherRecord, bool) {
	if s == nil || id == "" {
		return nil, false
	}
	return s.pubs.Get(id)
}

// Wait blocks until every Set issued so far is applied. LoadSnapshot already waits before it
// returns; this is for callers that need a barrier of their own.
func (s *Store) Wait() {
	if s == nil {
		return
	}
	s.users.Wait()
	s.pubs.Wait()
}

// Close stops the caches' goroutines and drops every record; later lookups miss. Call it only
// once the request path and any load have stopped using the Store: ristretto's Close is not safe
// against a concurrent Get or Set (it closes channels they may still send on).
func (s *Store) Close() {
	if s == nil || !s.closed.CompareAndSwap(false, true) {
		return
	}
	s.users.Close()
	s.pubs.Close()
}

// CacheStats are one cache's counters since the Store was created.
type CacheStats struct {
	Hits, Misses  uint64
	KeysAdded     uint64 // new keys admitted
	KeysUpdated   uint64
	KeysEvicted   uint64 // removed to make room, or swept after TTL expiry (every few seconds)
	SetsDropped   uint64 // writes lost to a full write buffer (LoadSnapshot retries these)
	SetsRejected  uint64 // new keys refused by the TinyLFU admission policy
	CostAdded     uint64
	CostEvicted   uint64
	RemainingCost int64 // MaxCost less the cost currently held
}

// Stats are the Store's counters. The embedded CacheStats is the sum over all caches, so
// st.Hits is every hit; Users and Publishers break it down.
type Stats struct {
	CacheStats
	Users      CacheStats
	Publishers CacheStats
	// NotAdmitted counts snapshot records that were absent after their load returned; each such
	// load also returned an error.
	NotAdmitted uint64
}

// Metrics returns the current counters; a nil Store reports zeros.
func (s *Store) Metrics() Stats {
	if s == nil {
		return Stats{}
	}
	st := Stats{
		Users:       cacheStats(s.users.Metrics, s.users.RemainingCost()),
		Publishers:  cacheStats(s.pubs.Metrics, s.pubs.RemainingCost()),
		NotAdmitted: s.notAdmitted.Load(),
	}
	st.CacheStats = st.Users.add(st.Publishers)
	return st
}

func cacheStats(m *ristretto.Metrics, remaining int64) CacheStats {
	// Metrics methods are nil-safe, which also covers a closed cache.
	return CacheStats{
		Hits:          m.Hits(),
		Misses:        m.Misses(),
		KeysAdded:     m.KeysAdded(),
		KeysUpdated:   m.KeysUpdated(),
		KeysEvicted:   m.KeysEvicted(),
		SetsDropped:   m.SetsDropped(),
		SetsRejected:  m.SetsRejected(),
		CostAdded:     m.CostAdded(),
		CostEvicted:   m.CostEvicted(),
		RemainingCost: remaining,
	}
}

func (a CacheStats) add(b CacheStats) CacheStats {
	return CacheStats{
		Hits:          a.Hits + b.Hits,
		Misses:        a.Misses + b.Misses,
		KeysAdded:     a.KeysAdded + b.KeysAdded,
		KeysUpdated:   a.KeysUpdated + b.KeysUpdated,
		KeysEvicted:   a.KeysEvicted + b.KeysEvicted,
		SetsDropped:   a.SetsDropped + b.SetsDropped,
		SetsRejected:  a.SetsRejected + b.SetsRejected,
		CostAdded:     a.CostAdded + b.CostAdded,
		CostEvicted:   a.CostEvicted + b.CostEvicted,
		RemainingCost: a.RemainingCost + b.RemainingCost,
	}
}

// ErrNotAdmitted is wrapped by LoadSnapshot's error when some records of a well-formed snapshot
// are not in the Store after loading, typically because a cache's MaxCost is too small.
var ErrNotAdmitted = errors.New("records not admitted")

// ErrClosed is returned when loading into a closed Store.
var ErrClosed = errors.New("feature store closed")

func userCost(r *UserRecord) int64 {
	return entryOverhead + userRecordSize + segmentsCost(r.Segments)
}

func publisherCost(r *PublisherRecord) int64 {
	return entryOverhead + pubRecordSize + segmentsCost(r.Segments)
}

// segmentsCost counts string bytes per record even though LoadSnapshot interns segment ids:
// overestimating keeps MaxCost a safe upper bound.
func segmentsCost(segs []string) int64 {
	c := int64(len(segs)) * stringHeader
	for _, s := range segs {
		c += int64(len(s))
	}
	return c
}
