package events

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"
	"unsafe"
)

func TestIDWindowSeenUnseen(t *testing.T) {
	w := NewIDWindow(3)
	if w.Seen("a") {
		t.Fatal("empty window has seen a")
	}
	if !w.Add("a") || w.Add("a") {
		t.Fatal("Add should report a new once")
	}
	if !w.Seen("a") || w.Seen("b") || w.Seen("") {
		t.Fatal("seen wrong")
	}
	w.Add("b")
	w.Add("c")
	if w.Len() != 3 || !w.Seen("a") {
		t.Fatalf("full window: len %d, a seen %v", w.Len(), w.Seen("a"))
	}
	// Re-adding a does not refresh it: it is still the oldest and the next to go.
	w.Add("a")
	w.Add("d")
	if w.Seen("a") || !w.Seen("b") || !w.Seen("c") || !w.Seen("d") || w.Len() != 3 {
		t.Fatalf("after d: a=%v b=%v c=%v d=%v len=%d", w.Seen("a"), w.Seen("b"), w.Seen("c"), w.Seen("d"), w.Len())
	}
	// A forgotten id is new again.
	if !w.Add("a") || w.Seen("b") {
		t.Fatal("a should be new again and evict b")
	}
	// Ids differing only in case, or a prefix, are different ids.
	if w.Seen("A") || w.Seen("") || NewIDWindow(0).Size() != 1 {
		t.Fatal("distinct ids confused, or size 0 not raised to 1")
	}
}

// Exactly the last size ids are remembered, whatever the order of arrival.
func TestIDWindowEviction(t *testing.T) {
	const size = 1000
	w := NewIDWindow(size)
	for i := range 10 * size {
		w.Add(strconv.Itoa(i))
		if w.Len() > size || len(w.ring) > size || cap(w.ring) > size || 3*len(w.slots) > 8*size+64 || 4*w.n > 3*len(w.slots) {
			t.Fatalf("after %d adds: len %d ring %d/%d table %d, size %d", i+1, w.Len(), len(w.ring), cap(w.ring), len(w.slots), size)
		}
	}
	for i := range 10 * size {
		if want := i >= 9*size; w.Seen(strconv.Itoa(i)) != want {
			t.Fatalf("id %d seen %v, want %v", i, !want, want)
		}
	}
}

// Memory stays bounded however many ids pass through: the window's storage is sized by its size
// alone (about 48 bytes an id), and once full, adding ids allocates nothing, so churn cannot grow
// it. (Measured on the structure, not the process heap, which parallel tests disturb.)
func TestIDWindowMemoryBounded(t *testing.T) {
	const size = 1 << 16
	w := NewIDWindow(size)
	id := func(i int) string { return "event-" + strconv.Itoa(i) + "-with-a-long-uuid-like-suffix" }
	ids := make([]string, 4*size)
	for i := range ids {
		ids[i] = id(i)
	}
	bytes := func() int { return (cap(w.slots) + cap(w.ring)) * int(unsafe.Sizeof(idHash{})) }
	for i := range size {
		w.Add(ids[i])
	}
	full := bytes()
	next := size
	if n := testing.AllocsPerRun(2*size, func() { w.Add(ids[next%len(ids)]); next++ }); n != 0 {
		t.Errorf("Add on a full window: %v allocations, want 0", n)
	}
	for i := range 10 * size {
		w.Add(ids[i%len(ids)] + "x")
	}
	perID := float64(full) / size
	t.Logf("a full window of %d ids: %d KiB (%.0f B an id)", size, full>>10, perID)
	if after := bytes(); after != full || w.Len() != size {
		t.Errorf("storage went from %d to %d bytes over churn (len %d): the window is not bounded", full, after, w.Len())
	}
	if perID > 64 {
		t.Errorf("%.0f bytes an id, want at most 64", perID)
	}
}

// The window agrees with a plain reference (a slice of the last size ids) through random adds of
// ids from a small universe: repeats, evictions and the table's deletions all exercised, in
// windows small enough that probe runs collide and wrap.
func TestIDWindowMatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for size := 1; size <= 70; size += 3 {
		w := NewIDWindow(size)
		var ref []string
		universe := 3 * size
		for op := range 20 * size {
			id := strconv.Itoa(rng.IntN(universe))
			wantNew := !slices.Contains(ref, id)
			if got := w.Add(id); got != wantNew {
				t.Fatalf("size %d op %d: Add(%s) = %v, want %v", size, op, id, got, wantNew)
			}
			if wantNew {
				ref = append(ref, id)
				if len(ref) > size {
					ref = ref[1:]
				}
			}
			if w.Len() != len(ref) {
				t.Fatalf("size %d op %d: Len %d, want %d", size, op, w.Len(), len(ref))
			}
			for u := range universe {
				id := strconv.Itoa(u)
				if got, want := w.Seen(id), slices.Contains(ref, id); got != want {
					t.Fatalf("size %d op %d: Seen(%s) = %v, want %v", size, op, id, got, want)
				}
			}
		}
	}
}

// A Seen check on an id the window holds (the common case for redeliveries) does not allocate,
// nor does one on an unknown id.
func TestIDWindowSeenAllocs(t *testing.T) {
	w := NewIDWindow(1024)
	for i := range 2048 {
		w.Add("id-" + strconv.Itoa(i))
	}
	present, absent := "id-2000", "id-5"
	if !w.Seen(present) || w.Seen(absent) {
		t.Fatal("setup")
	}
	if n := testing.AllocsPerRun(1000, func() { w.Seen(present) }); n != 0 {
		t.Errorf("Seen(existing id): %v allocations, want 0", n)
	}
	if n := testing.AllocsPerRun(1000, func() { w.Seen(absent) }); n != 0 {
		t.Errorf("Seen(unknown id): %v allocations, want 0", n)
	}
}

func BenchmarkIDWindow(b *testing.B) {
	w := NewIDWindow(1 << 20)
	ids := make([]string, 1<<16)
	for i := range ids {
		ids[i] = fmt.Sprintf("0190f3c2-7d1e-7a4b-9c2d-%012d", i)
	}
	b.Run("Seen", func(b *testing.B) {
		for i := range ids {
			w.Add(ids[i])
		}
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			w.Seen(ids[i&(len(ids)-1)])
		}
	})
	b.Run("Add", func(b *testing.B) {
		w := NewIDWindow(1 << 14)
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			w.Add(ids[i&(len(ids)-1)])
		}
	})
}
