package features

import (
	"fmt"
	"math/bits"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/cespare/xxhash/v2"
	"github.com/dgraph-io/ristretto/v2"
)

// Frequency caps: how many impressions of a campaign a user has had in the campaign's cap window.
//
// Window semantics (the load generator checks caps with exactly these): a user's window for a
// campaign starts at their first impression of it (the impression event's ts) and lasts the
// campaign's cap window; impressions with ts in [start, start+window) count against the cap; the
// first impression at or after start+window starts a new window. Event time, not arrival time, so
// that every bidder, and a bidder rebuilding after a restart, counts the same.
//
// Two sources add up, because an impression reaches the bidder seconds after the bid that won it:
//
//   - confirmed: impressions read from Kafka by the Updater (every bidder reads all of them), in a
//     ristretto cache whose entries expire with their window;
//   - pending: this bidder's own bids of the last PendingFor, which may still become impressions
//     (Reserve). They keep counting after their impression is confirmed, until they age out: a bid
//     cannot be matched to its impression (the impression may be another bidder's), and releasing
//     one that is not this bid's would let the cap be exceeded. So caps err on the safe side.

// CapsConfig configures Caps. The zero value is usable.
type CapsConfig struct {
	// MaxCost bounds the confirmed counts, in approximate bytes; default DefaultCapsMaxCost. Size
	// it for the (user, capped campaign) pairs with an impression in the longest cap window: a
	// pair evicted or refused for room is forgotten, and the user may then see the campaign again.
	// Caps.Stats().NotAdmitted counts such losses.
	MaxCost int64
	// PendingFor is how long a Reserve counts: at least the time from a bid to its impression
	// event being applied by the Updater (the notice delay, the producer's batching, Kafka, the
	// follower); default 30 s. Reservations count for between PendingFor and PendingFor plus a
	// quarter of it (time buckets).
	PendingFor time.Duration
	// PendingSlots is the size of the table of reservations, rounded up to a power of two;
	// default 1<<18 (2 MiB). Each (user, campaign) reserved in a time bucket takes a slot: keep it
	// above about three times the bids this bidder sends in 1.25×PendingFor. Reservations that
	// find no free slot go to a small count-min sketch, which overcounts (never under).
	PendingSlots int
}

// DefaultCapsMaxCost is CapsConfig.MaxCost when 0: room for about 200,000 (user, campaign) pairs.
const DefaultCapsMaxCost = 32 << 20

const (
	pendingBuckets  = 4  // PendingFor in this many buckets, plus the current one
	pendingProbe    = 16 // slots a key may use: two cache lines
	overflowRows    = 4
	overflowWidth   = 1 << 12
	capEntryCost    = entryOverhead + int64(unsafe.Sizeof(capEntry{}))
	freshMax        = 4096 // new confirmed entries between two Waits of the cache
	capSetRetries   = 100
	defaultPending  = 30 * time.Second
	defaultSlots    = 1 << 18
	maxPendingSlots = 1 << 30
)

// Caps counts impressions per (user, campaign) against frequency caps. Allow, TryReserve, Reserve
// and Count are for any goroutine and never block, allocate or do I/O; Impression is for one
// writer goroutine at a time (the Updater). A nil *Caps allows everything and counts nothing.
type Caps struct {
	confirmed *ristretto.Cache[uint64, *capEntry]
	pending   pendingTable

	// The writer's state (Impression, Wait): entries Set but maybe not yet applied by ristretto,
	// so that a second impression right after the first finds its entry instead of replacing it.
	mu    sync.Mutex
	fresh map[uint64]*capEntry

	notAdmitted atomic.Uint64
	closed      atomic.Bool
}

// capEntry is one window's confirmed count. The key is a 64-bit hash, so the entry carries its
// identity: a colliding pair reads as "no information" instead of another pair's count.
type capEntry struct {
	user     uint64
	campaign string
	end      int64        // unix ns: the window's end
	n        atomic.Int64 // impressions in the window; the writer adds, readers load
}

// NewCaps returns empty Caps. Close it when done: the cache runs goroutines.
func NewCaps(cfg CapsConfig) (*Caps, error) {
	switch {
	case cfg.MaxCost < 0:
		return nil, fmt.Errorf("caps: MaxCost %d is negative", cfg.MaxCost)
	case cfg.PendingFor < 0:
		return nil, fmt.Errorf("caps: PendingFor %v is negative", cfg.PendingFor)
	case cfg.PendingSlots < 0 || cfg.PendingSlots > maxPendingSlots:
		return nil, fmt.Errorf("caps: PendingSlots %d outside [0, %d]", cfg.PendingSlots, maxPendingSlots)
	}
	if cfg.MaxCost == 0 {
		cfg.MaxCost = DefaultCapsMaxCost
	}
	if cfg.PendingFor == 0 {
		cfg.PendingFor = defaultPending
	}
	if cfg.PendingSlots == 0 {
		cfg.PendingSlots = defaultSlots
	}
	c, err := ristretto.NewCache(&ristretto.Config[uint64, *capEntry]{
		NumCounters:        max(cfg.MaxCost/capEntryCost*10, 1024),
		MaxCost:            cfg.MaxCost,
		BufferItems:        bufferItems,
		IgnoreInternalCost: true,
	})
	if err != nil {
		return nil, fmt.Errorf("caps: %w", err)
	}
	cp := &Caps{confirmed: c, fresh: map[uint64]*capEntry{}}
	cp.pending.init(cfg.PendingFor, cfg.PendingSlots)
	return cp, nil
}

// capKey is the 64-bit key of (user, campaign), the same in every process.
func capKey(user uint64, campaign string) uint64 {
	return mix64(user ^ mix64(xxhash.Sum64String(campaign)+0x9e3779b97f4a7c15))
}

// mix64 is the SplitMix64 finaliser: every input bit affects every output bit.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	return x ^ x>>31
}

// Allow reports whether user may see campaign once more: confirmed impressions in the current
// window plus pending reservations are below limit. limit <= 0 means uncapped, and user 0 (no
// user id) cannot be capped: both are allowed (the caller decides whether capped campaigns bid
// on unknown users).
//
// Allow then Reserve is not atomic: two requests for the same user at once may both pass. Use
// TryReserve where that matters.
func (c *Caps) Allow(user uint64, campaign string, limit int, now time.Time) bool {
	if c == nil || limit <= 0 || user == 0 {
		return true
	}
	k := capKey(user, campaign)
	n := c.count(k, user, campaign, now)
	if n >= int64(limit) {
		return false
	}
	return n+c.pending.count(k, now) < int64(limit)
}

// Reserve counts a bid for campaign to user, sent at now, as a possible impression for the next
// PendingFor. Call it once per bid sent, for capped campaigns (it costs a slot for nothing on
// uncapped ones).
func (c *Caps) Reserve(user uint64, campaign string, now time.Time) {
	if c == nil || user == 0 {
		return
	}
	c.pending.add(capKey(user, campaign), now)
}

// TryReserve is Allow and Reserve in one step that concurrent callers cannot both pass beyond the
// limit: it reserves, then checks the total including its own reservation, and takes it back if
// that is over. It reports whether the bid may go. Racing callers may both be refused near the
// limit, never both admitted past it.
func (c *Caps) TryReserve(user uint64, campaign string, limit int, now time.Time) bool {
	if c == nil || limit <= 0 || user == 0 {
		return true
	}
	k := capKey(user, campaign)
	n := c.count(k, user, campaign, now)
	if n >= int64(limit) {
		return false
	}
	ref := c.pending.add(k, now)
	if n+c.pending.count(k, now) <= int64(limit) {
		return true
	}
	c.pending.undo(ref)
	return false
}

// Count is user's confirmed impressions of campaign in the window current at now.
func (c *Caps) Count(user uint64, campaign string, now time.Time) int {
	if c == nil || user == 0 {
		return 0
	}
	return int(c.count(capKey(user, campaign), user, campaign, now))
}

func (c *Caps) count(k, user uint64, campaign string, now time.Time) int64 {
	if c.closed.Load() {
		return 0
	}
	e, ok := c.confirmed.Get(k)
	if !ok || e.user != user || e.campaign != campaign || now.UnixNano() >= e.end {
		return 0
	}
	return e.n.Load()
}

// Impression counts an impression of campaign to user at time at, for a campaign capped over
// window. It is for one goroutine at a time (the Updater's); impressions whose window ended
// before the wall clock's now are not stored (they cannot matter any more).
func (c *Caps) Impression(user uint64, campaign string, window time.Duration, at time.Time) {
	if c == nil || user == 0 || window <= 0 || c.closed.Load() {
		return
	}
	ts := at.UnixNano()
	k := capKey(user, campaign)
	c.mu.Lock()
	defer c.mu.Unlock()
	e, inFresh := c.fresh[k]
	ok := inFresh
	if !ok {
		e, ok = c.confirmed.Get(k)
	}
	if ok && e.user == user && e.campaign == campaign && ts < e.end {
		// An impression older than the window's first (ts order within a campaign's partition
		// is only roughly kept) is counted in the window too: that errs on the safe side.
		e.n.Add(1)
		return
	}
	end := ts + int64(window)
	ttl := time.Until(time.Unix(0, end))
	if ttl <= 0 {
		return
	}
	if inFresh {
		// A Set of a key whose first Set ristretto has not applied yet is taken for a second new
		// key and dropped by the policy; once applied, a Set of it is an update in place.
		c.confirmed.Wait()
	}
	e = &capEntry{user: user, campaign: campaign, end: end}
	e.n.Store(1)
	cost := capEntryCost + int64(len(campaign))
	set := c.confirmed.SetWithTTL(k, e, cost, ttl)
	for try := 0; !set && try < capSetRetries; try++ {
		// The write buffer was full (ristretto drops rather than blocks): drain it and retry.
		c.confirmed.Wait()
		set = c.confirmed.SetWithTTL(k, e, cost, ttl)
	}
	if !set {
		c.notAdmitted.Add(1)
		return
	}
	c.fresh[k] = e
	if len(c.fresh) >= freshMax {
		c.settle()
	}
}

// Wait makes every Impression so far visible to Allow and Count, and checks that the cache kept
// them. The Updater calls it after each batch of events; Impression calls it every few thousand
// new windows to bound its bookkeeping.
func (c *Caps) Wait() {
	if c == nil || c.closed.Load() {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.settle()
}

func (c *Caps) settle() {
	if len(c.fresh) == 0 {
		return
	}
	c.confirmed.Wait()
	for k, e := range c.fresh {
		// GetTTL, unlike Get, does not count as an access for the admission policy.
		if _, ok := c.confirmed.GetTTL(k); !ok && time.Now().UnixNano() < e.end {
			c.notAdmitted.Add(1)
		}
	}
	clear(c.fresh)
}

// CapsStats are Caps' counters.
type CapsStats struct {
	// NotAdmitted counts windows the cache refused or dropped (raise MaxCost if it grows).
	NotAdmitted uint64
	// Overflowed counts reservations that found no free slot and went to the count-min sketch
	// (raise PendingSlots if it grows).
	Overflowed uint64
}

// Stats returns the counters; a nil Caps reports zeros.
func (c *Caps) Stats() CapsStats {
	if c == nil {
		return CapsStats{}
	}
	return CapsStats{
		NotAdmitted: c.notAdmitted.Load(),
		Overflowed:  c.pending.overflowed.Load(),
	}
}

// Close stops the cache's goroutines; later calls count nothing and allow everything that has
// no reservation. Call it once nothing uses the Caps any more (ristretto's Close is not safe
// against a concurrent Set).
func (c *Caps) Close() {
	if c == nil || !c.closed.CompareAndSwap(false, true) {
		return
	}
	c.confirmed.Close()
}

// pendingTable holds reservations: a lock-free open-addressing table of atomic 64-bit cells, each
// one (fingerprint, time bucket, count) for one key in one bucket. A key probes the same
// pendingProbe cells on every call; Reserve increments its cell for the current bucket or claims
// a free one (empty, aged out, or at zero), Allow sums the key's cells of live buckets. Cells
// describe themselves (their bucket is in them), so nothing ever needs clearing: an aged-out cell
// is simply free. A fingerprint collision (32 bits, within one probe window) adds another key's
// reservations: an overcount, the safe side. When every probed cell is taken by live keys the
// reservation goes to a small time-bucketed count-min sketch, which Allow always adds: again an
// overcount only.
//
// Why not a count-min sketch alone: for the question caps ask ("is this user's count 0, 1 or
// 2?") a sketch's error is the problem, not a detail. With N reservations live and width W, a
// row is off by at least one for a given key with probability about 1-exp(-N/W); at 2,000 bids/s
// over 40 s and W=65,536 that is 0.7 per row, 0.24 over four rows — a quarter of capped users
// wrongly refused near their cap. The table is exact up to fingerprint collisions for the same
// memory.
type pendingTable struct {
	cells      []atomic.Uint64
	mask       uint64
	width      int64 // ns per bucket
	overflow   [pendingBuckets + 1][overflowRows][overflowWidth]atomic.Uint64
	overflowed atomic.Uint64
	// lastOverflow is the latest epoch an overflow was written at: once every bucket of the sketch
	// is older than the pending window, counts skip it (the bid path pays for the sketch only while
	// it holds something).
	lastOverflow atomic.Uint64
}

// Cell layout: fingerprint (32 bits, never 0 in a used cell) | bucket (16 bits) | count (16 bits).
// The bucket is the epoch mod 2^16: a cell aged exactly 65,536 buckets looks live again, which
// overcounts, the safe side. Overflow cells: bucket (16) | count (48).
const (
	cellCountBits  = 16
	cellBucketBits = 16
	cellCountMax   = 1<<cellCountBits - 1
	bucketMask     = 1<<cellBucketBits - 1
)

func (t *pendingTable) init(pendingFor time.Duration, slots int) {
	n := 1 << bits.Len(uint(max(slots, pendingProbe)-1))
	t.cells = make([]atomic.Uint64, n)
	t.mask = uint64(n - 1)
	t.width = max(int64(pendingFor)/pendingBuckets, 1)
}

// pendingRef says where a reservation went, so TryReserve can take it back.
type pendingRef struct {
	cell  *atomic.Uint64 // nil: the overflow sketch
	k     uint64
	epoch uint64
}

func (t *pendingTable) epoch(now time.Time) uint64 {
	return uint64(now.UnixNano() / t.width)
}

// live reports whether a cell of bucket b counts at epoch e: b is one of e-pendingBuckets..e, or
// a few buckets ahead. Callers' clocks differ slightly (a goroutine that read the time just before
// a bucket boundary acts after one that read it just after), and a cell of a bucket ahead is a
// reservation that must neither be taken over as free nor left out of a count.
func live(b, e uint64) bool {
	age := (e - b) & bucketMask
	return age <= pendingBuckets || age > bucketMask-pendingBuckets
}

func unpackCell(v uint64) (fp uint32, b, n uint64) {
	return uint32(v >> 32), v >> cellCountBits & bucketMask, v & cellCountMax
}

func packCell(fp uint32, b, n uint64) uint64 {
	return uint64(fp)<<32 | (b&bucketMask)<<cellCountBits | n
}

func fingerprint(k uint64) uint32 { return uint32(k>>32) | 1 }

func (t *pendingTable) add(k uint64, now time.Time) pendingRef {
	e := t.epoch(now)
	eb := e & bucketMask
	fp := fingerprint(k)
	for i := uint64(0); i < pendingProbe; i++ {
		c := &t.cells[(k+i)&t.mask]
		for {
			v := c.Load()
			cfp, b, n := unpackCell(v)
			switch {
			case cfp == fp && b == eb && n < cellCountMax:
				if c.CompareAndSwap(v, v+1) {
					return pendingRef{cell: c, k: k, epoch: e}
				}
				continue
			case v == 0 || !live(b, e) || n == 0:
				if c.CompareAndSwap(v, packCell(fp, eb, 1)) {
					return pendingRef{cell: c, k: k, epoch: e}
				}
				continue
			}
			break // a live cell of another key, of this key's older bucket, or full
		}
	}
	t.overflowed.Add(1)
	for last := t.lastOverflow.Load(); e > last && !t.lastOverflow.CompareAndSwap(last, e); last = t.lastOverflow.Load() {
	}
	slot := &t.overflow[e%(pendingBuckets+1)]
	for r := range overflowRows {
		c := &slot[r][overflowIndex(k, r)]
		for {
			v := c.Load()
			nv := eb<<48 | 1
			if v>>48 == eb {
				nv = v + 1
			}
			if c.CompareAndSwap(v, nv) {
				break
			}
		}
	}
	return pendingRef{k: k, epoch: e}
}

func overflowIndex(k uint64, row int) uint64 {
	return mix64(k+uint64(row)*0x9e3779b97f4a7c15) & (overflowWidth - 1)
}

// undo takes back a reservation add made, unless its cell has moved on since.
func (t *pendingTable) undo(r pendingRef) {
	eb := r.epoch & bucketMask
	if r.cell != nil {
		fp := fingerprint(r.k)
		for {
			v := r.cell.Load()
			cfp, b, n := unpackCell(v)
			if cfp != fp || b != eb || n == 0 || r.cell.CompareAndSwap(v, v-1) {
				return
			}
		}
	}
	slot := &t.overflow[r.epoch%(pendingBuckets+1)]
	for row := range overflowRows {
		c := &slot[row][overflowIndex(r.k, row)]
		for {
			v := c.Load()
			if v>>48 != eb || v&(1<<48-1) == 0 || c.CompareAndSwap(v, v-1) {
				break
			}
		}
	}
}

// count is k's reservations in live buckets at now.
func (t *pendingTable) count(k uint64, now time.Time) int64 {
	e := t.epoch(now)
	fp := fingerprint(k)
	var n int64
	for i := uint64(0); i < pendingProbe; i++ {
		cfp, b, cn := unpackCell(t.cells[(k+i)&t.mask].Load())
		if cfp == fp && live(b, e) {
			n += int64(cn)
		}
	}
	if t.overflowed.Load() == 0 || int64(e)-int64(t.lastOverflow.Load()) > pendingBuckets {
		return n
	}
	var est int64 = -1
	for r := range overflowRows {
		var sum int64
		idx := overflowIndex(k, r)
		for d := uint64(0); d <= pendingBuckets; d++ {
			be := e - d
			v := t.overflow[be%(pendingBuckets+1)][r][idx].Load()
			if v>>48 == be&bucketMask {
				sum += int64(v & (1<<48 - 1))
			}
		}
		if est < 0 || sum < est {
			est = sum
		}
	}
	return n + est
}
