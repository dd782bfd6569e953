package events

import "hash/maphash"

// IDWindow remembers the most recent event ids, exactly the last Size of them, so that a consumer
// can tell a redelivered or retried event from a new one. Seen and Add are O(1) and do not
// allocate (once the window has grown to its size); memory is bounded by the size, not by how many
// ids pass through.
//
// It keeps a 128-bit keyed hash of each id, not the string: that bounds memory whatever the ids
// look like and never pins the message buffers ids are cut from. 64 bits would not do: with 2^20
// ids in the window a new id would be mistaken for a seen one once in 2^44 checks, which a busy
// exchange reaches within a year, and a false "seen" drops a billable event; at 128 bits it is
// once in 2^108. The seeds are chosen per process, so no input can be crafted to collide.
//
// The hashes live in an open-addressing table (linear probing, at most 3/4 full, deletion by
// backward shift so no tombstones build up under churn) plus a ring in arrival order that says
// which id to forget next: 16 bytes an id for the ring and 21 to 43 for the table, about 48 in
// all for a full window of 2^20 ids (48 MiB). A Go map with deletes was measured at about 120
// bytes an id under the same churn.
//
// An IDWindow is not safe for concurrent use.
type IDWindow struct {
	s0, s1 maphash.Seed
	slots  []idHash // the table; the zero hash marks an empty slot; len is a power of two
	n      int      // ids in the table
	ring   []idHash // arrival order; grows to size, then wraps
	next   int      // the oldest id, once ring is full
	size   int
}

type idHash struct{ a, b uint64 }

// NewIDWindow returns a window of the last size ids (at least 1). Memory is taken as ids arrive,
// not up front, so a quiet consumer with a large window stays small.
func NewIDWindow(size int) *IDWindow {
	return &IDWindow{s0: maphash.MakeSeed(), s1: maphash.MakeSeed(), size: max(size, 1)}
}

func (w *IDWindow) hash(id string) idHash {
	h := idHash{maphash.String(w.s0, id), maphash.String(w.s1, id)}
	if h == (idHash{}) {
		h.b = 1 // zero means empty
	}
	return h
}

// find returns h's slot, or the empty slot where it would go. The table always has an empty slot.
func (w *IDWindow) find(h idHash) (int, bool) {
	mask := len(w.slots) - 1
	for i := int(h.a) & mask; ; i = (i + 1) & mask {
		switch w.slots[i] {
		case h:
			return i, true
		case idHash{}:
			return i, false
		}
	}
}

// Seen reports whether id is among the window's ids.
func (w *IDWindow) Seen(id string) bool {
	if w.n == 0 {
		return false
	}
	_, ok := w.find(w.hash(id))
	return ok
}

// Add remembers id, forgetting the oldest id when the window is full. It reports whether id was
// new; adding an id already in the window changes nothing (its age is not refreshed).
func (w *IDWindow) Add(id string) bool {
	h := w.hash(id)
	if w.n > 0 {
		if _, ok := w.find(h); ok {
			return false
		}
	}
	if len(w.ring) < w.size {
		if len(w.ring) == cap(w.ring) { // grow by doubling, never past size
			grown := make([]idHash, len(w.ring), min(max(2*cap(w.ring), 64), w.size))
			copy(grown, w.ring)
			w.ring = grown
		}
		w.ring = append(w.ring, h)
	} else {
		w.remove(w.ring[w.next])
		w.ring[w.next] = h
		w.next++
		if w.next == w.size {
			w.next = 0
		}
	}
	if 4*(w.n+1) > 3*len(w.slots) {
		w.grow()
	}
	i, _ := w.find(h)
	w.slots[i] = h
	w.n++
	return true
}

// grow doubles the table (from 64 slots) and re-inserts its hashes.
func (w *IDWindow) grow() {
	old := w.slots
	w.slots = make([]idHash, max(2*len(old), 64))
	for _, h := range old {
		if h != (idHash{}) {
			i, _ := w.find(h)
			w.slots[i] = h
		}
	}
}

// remove deletes h from the table, shifting back the entries after it in its probe run so that
// every entry stays reachable from its home slot (Knuth, TAOCP 6.4, Algorithm R).
func (w *IDWindow) remove(h idHash) {
	i, ok := w.find(h)
	if !ok {
		return
	}
	mask := len(w.slots) - 1
	for j := (i + 1) & mask; w.slots[j] != (idHash{}); j = (j + 1) & mask {
		home := int(w.slots[j].a) & mask
		// The entry at j may move to the hole at i unless its home lies cyclically in (i, j].
		if i <= j && (i < home && home <= j) || i > j && (i < home || home <= j) {
			continue
		}
		w.slots[i] = w.slots[j]
		i = j
	}
	w.slots[i] = idHash{}
	w.n--
}

// Len is how many ids the window holds (at most its size).
func (w *IDWindow) Len() int { return w.n }

// Size is the most ids the window holds.
func (w *IDWindow) Size() int { return w.size }
