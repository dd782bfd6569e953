package features

import (
	"strconv"
	"strings"
	"testing"
)

func BenchmarkUserHit(b *testing.B) {
	s := sampleStore(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := s.User(iabBannerUser); !ok {
			b.Fatal("miss")
		}
	}
}

func BenchmarkUserMiss(b *testing.B) {
	s := sampleStore(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := s.User("nobody-at-all"); ok {
			b.Fatal("hit")
		}
	}
}

func BenchmarkPublisherHit(b *testing.B) {
	s := sampleStore(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := s.Publisher(iabBannerPub); !ok {
			b.Fatal("miss")
		}
	}
}

// Many bid-path goroutines at once: the shape of production traffic.
func BenchmarkUserHitParallel(b *testing.B) {
	s := sampleStore(b)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, ok := s.User(iabBannerUser); !ok {
				b.Error("miss")
				return
			}
		}
	})
}

// Parallel lookups spread over many users, as real traffic is: no single hot key, so no single
// hot cache line in ristretto's counters and shard locks.
func BenchmarkUserHitParallelSpread(b *testing.B) {
	const n = 4096
	s := newStore(b, Config{})
	if _, err := s.LoadSnapshot(strings.NewReader(usersSnapshot("u", n))); err != nil {
		b.Fatal(err)
	}
	ids := make([]string, n)
	for i := range ids {
		ids[i] = "u" + strconv.Itoa(i)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if _, ok := s.User(ids[i%n]); !ok {
				b.Error("miss")
				return
			}
			i += 7
		}
	})
}

// Startup cost of a snapshot: parse, store, wait and verify, per 10k users.
func BenchmarkLoadSnapshot10k(b *testing.B) {
	snap := usersSnapshot("u", 10000)
	s := newStore(b, Config{})
	b.ReportAllocs()
	b.SetBytes(int64(len(snap)))
	for b.Loop() {
		if _, err := s.LoadSnapshot(strings.NewReader(snap)); err != nil {
			b.Fatal(err)
		}
	}
}
