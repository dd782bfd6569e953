package notice

import (
	"testing"
	"time"
)

var sinkClaims Claims

// BenchmarkAppend signs one bid's token into a reused buffer, as the bidder does per bid.
func BenchmarkAppend(b *testing.B) {
	s := newSigner(b, testKey)
	c := sampleClaims()
	dst := make([]byte, 0, 256)
	b.ReportAllocs()
	for b.Loop() {
		dst = s.Append(dst[:0], &c)
	}
	b.SetBytes(int64(len(dst)))
}

// BenchmarkVerify checks one notice's token, as the notice endpoints do per request.
func BenchmarkVerify(b *testing.B) {
	s := newSigner(b, testKey)
	c := sampleClaims()
	tok := string(s.Append(nil, &c))
	now := bidTime.Add(time.Minute)
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if sinkClaims, err = s.Verify(tok, now, time.Hour); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(int64(len(tok)))
}

// BenchmarkVerifyParallel verifies from every P at once: the pooled MACs must not contend.
func BenchmarkVerifyParallel(b *testing.B) {
	s := newSigner(b, testKey)
	c := sampleClaims()
	tok := string(s.Append(nil, &c))
	now := bidTime.Add(time.Minute)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := s.Verify(tok, now, time.Hour); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkVerifyForged is the cost of refusing a token with a bad tag (what a flood of forged
// notices costs).
func BenchmarkVerifyForged(b *testing.B) {
	s := newSigner(b, testKey)
	c := sampleClaims()
	tok := []byte(s.Append(nil, &c))
	tok[10] ^= 1
	forged := string(tok)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Verify(forged, bidTime, 0); err == nil {
			b.Fatal("forged token accepted")
		}
	}
}
