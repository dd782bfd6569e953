package events

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

type ptSpillIn struct {
	topic      string
	part       int32
	floor      int64
	key, value string
}

func ptSpillRecords(n int) []ptSpillIn {
	out := make([]ptSpillIn, n)
	for i := range out {
		topic := TopicWins
		if i%3 == 2 {
			topic = TopicImpressions
		}
		out[i] = ptSpillIn{
			topic: topic, part: int32(i%4) - 1, floor: int64(i) - 1,
			key:   fmt.Sprintf("c%d", i%5),
			value: fmt.Sprintf(`{"v":1,"id":"e%04d","pad":%q}`, i, strings.Repeat("x", i%50)),
		}
	}
	return out
}

func ptWriteSpill(t testing.TB, dir string, recs []ptSpillIn) {
	t.Helper()
	s, _, err := openSpill(dir)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range recs {
		s.add(r.topic, 0, r.part, r.floor, []byte(r.key), []byte(r.value))
		if i%7 == 6 { // several flushes, as batches
			if err := s.flush(); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := s.flush(); err != nil {
		t.Fatal(err)
	}
	if err := s.close(); err != nil {
		t.Fatal(err)
	}
}

// ptReadSpill reads every record after the cursor, in small chunks as the producer does.
func ptReadSpill(t testing.TB, s *spillLog) []spillRec {
	t.Helper()
	var out []spillRec
	off := s.cursor
	for off < s.end {
		recs, _, err := s.read(off, 3, 200, nil)
		if err != nil {
			t.Fatalf("read at %d: %v", off, err)
		}
		if len(recs) == 0 {
			t.Fatalf("read at %d (end %d): no records", off, s.end)
		}
		out = append(out, recs...)
		last := recs[len(recs)-1]
		off = last.off + last.size
	}
	return out
}

func ptSameSpill(t testing.TB, got []spillRec, want []ptSpillIn) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d records, want %d", len(got), len(want))
	}
	for i, g := range got {
		w := want[i]
		if g.topic != w.topic || g.part != w.part || g.floor != w.floor || string(g.key) != w.key || string(g.value) != w.value {
			t.Fatalf("record %d = %+v (key %q value %q), want %+v", i, g, g.key, g.value, w)
		}
	}
}

func TestSpillRoundTripCursorAndTruncate(t *testing.T) {
	dir := t.TempDir()
	want := ptSpillRecords(40)
	ptWriteSpill(t, dir, want)

	s, rec, err := openSpill(dir)
	if err != nil {
		t.Fatal(err)
	}
	if rec.records != 40 || rec.corruptBytes != 0 || rec.headerReset {
		t.Fatalf("recovery %+v, want 40 clean records", rec)
	}
	got := ptReadSpill(t, s)
	ptSameSpill(t, got, want)

	// Acknowledge the first 15: the cursor survives a reopen.
	if err := s.commit(got[15].off); err != nil {
		t.Fatal(err)
	}
	s.close()
	s, rec, err = openSpill(dir)
	if err != nil {
		t.Fatal(err)
	}
	if rec.records != 25 {
		t.Fatalf("after commit: %d records, want 25", rec.records)
	}
	ptSameSpill(t, ptReadSpill(t, s), want[15:])

	// Acknowledge the rest: the file shrinks to its header.
	if err := s.commit(s.end); err != nil {
		t.Fatal(err)
	}
	if !s.empty() {
		t.Fatal("spill not empty after the last commit")
	}
	s.close()
	if st, err := os.Stat(filepath.Join(dir, spillFileName)); err != nil || st.Size() != spillHeaderSize {
		t.Fatalf("spill file after full replay: %v, %v; want %d bytes", st, err, spillHeaderSize)
	}
}

func TestSpillOneRecordLargerThanARead(t *testing.T) {
	dir := t.TempDir()
	want := []ptSpillIn{{TopicWins, -1, -1, "c", strings.Repeat("y", 5000)}, {TopicWins, -1, -1, "c", "small"}}
	ptWriteSpill(t, dir, want)
	s, _, err := openSpill(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	ptSameSpill(t, ptReadSpill(t, s), want) // reads of 200 bytes
}

func TestSpillTornTail(t *testing.T) {
	want := ptSpillRecords(10)
	for _, cut := range []int{1, 4, 8, 9, 20} {
		t.Run(fmt.Sprint("cut", cut), func(t *testing.T) {
			dir := t.TempDir()
			ptWriteSpill(t, dir, want)
			path := filepath.Join(dir, spillFileName)
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			// Find where the last record starts.
			s, _, err := openSpill(dir)
			if err != nil {
				t.Fatal(err)
			}
			all := ptReadSpill(t, s)
			s.close()
			lastOff := all[len(all)-1].off
			torn := data[:len(data)-cut]
			if err := os.WriteFile(path, torn, 0o644); err != nil {
				t.Fatal(err)
			}

			s, rec, err := openSpill(dir)
			if err != nil {
				t.Fatal(err)
			}
			defer s.close()
			if rec.records != 9 || rec.corruptAt != lastOff || rec.corruptBytes != int64(len(torn))-lastOff {
				t.Fatalf("recovery %+v, want 9 records and the torn last one (at %d) set aside", rec, lastOff)
			}
			ptSameSpill(t, ptReadSpill(t, s), want[:9])
			kept, err := os.ReadFile(rec.quarantine)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(kept, torn[lastOff:]) {
				t.Fatal("the quarantine file does not hold the torn bytes")
			}
			// New records go after the good prefix and read back.
			s.add(TopicWins, 0, -1, -1, []byte("k"), []byte("after"))
			if err := s.flush(); err != nil {
				t.Fatal(err)
			}
			got := ptReadSpill(t, s)
			if len(got) != 10 || string(got[9].value) != "after" {
				t.Fatalf("after append: %d records, last %q", len(got), got[len(got)-1].value)
			}
		})
	}
}

// A record that fails its checks in the middle of the spill (a bad disk) must not take the good
// records after it along: they are money. Each case damages the spill of 12 records and says which
// survive; the bad bytes are set aside, never replayed, and the spill reopens clean.
func TestSpillCorruptMiddleKeepsTheGoodRecords(t *testing.T) {
	for _, tc := range []struct {
		name    string
		corrupt func(data []byte, all []spillRec) []byte
		keep    []int
	}{
		{"bit flip in record 5's body", func(d []byte, all []spillRec) []byte {
			d[all[5].off+spillFrameSize+6] ^= 0x40
			return d
		}, []int{0, 1, 2, 3, 4, 6, 7, 8, 9, 10, 11}},
		{"record 5's length garbled", func(d []byte, all []spillRec) []byte {
			d[all[5].off+1] ^= 0x11
			return d
		}, []int{0, 1, 2, 3, 4, 6, 7, 8, 9, 10, 11}},
		{"record 3's checksum garbled and the last record torn", func(d []byte, all []spillRec) []byte {
			d[all[3].off+5] ^= 0xff
			return d[:len(d)-4]
		}, []int{0, 1, 2, 4, 5, 6, 7, 8, 9, 10}},
		{"records 2 and 7 garbled, garbage between 9 and 10", func(d []byte, all []spillRec) []byte {
			d[all[2].off+spillFrameSize+3] ^= 1
			d[all[7].off+spillFrameSize+9] ^= 1
			out := append([]byte{}, d[:all[10].off]...)
			out = append(out, 0xde, 0xad, 0xbe, 0xef, 0, 0, 0, 9, 1, 2, 3)
			return append(out, d[all[10].off:]...)
		}, []int{0, 1, 3, 4, 5, 6, 8, 9, 10, 11}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			want := ptSpillRecords(12)
			ptWriteSpill(t, dir, want)
			s, _, err := openSpill(dir)
			if err != nil {
				t.Fatal(err)
			}
			all := ptReadSpill(t, s)
			s.close()
			path := filepath.Join(dir, spillFileName)
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, tc.corrupt(data, all), 0o644); err != nil {
				t.Fatal(err)
			}

			s, rec, err := openSpill(dir)
			if err != nil {
				t.Fatal(err)
			}
			var kept []ptSpillIn
			for _, i := range tc.keep {
				kept = append(kept, want[i])
			}
			if rec.records != len(kept) || rec.corruptBytes == 0 || rec.quarantine == "" {
				t.Fatalf("recovery %+v, want %d good records and the bad bytes set aside", rec, len(kept))
			}
			ptSameSpill(t, ptReadSpill(t, s), kept)
			s.close()
			// Reopened, the spill is clean: nothing more set aside, the same records once each.
			s, rec, err = openSpill(dir)
			if err != nil {
				t.Fatal(err)
			}
			defer s.close()
			if rec.records != len(kept) || rec.corruptBytes != 0 {
				t.Fatalf("second open: recovery %+v, want %d good records and nothing corrupt", rec, len(kept))
			}
			ptSameSpill(t, ptReadSpill(t, s), kept)
		})
	}
}

func TestSpillNotASpill(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, spillFileName)
	junk := bytes.Repeat([]byte("not a spill file "), 10)
	os.WriteFile(path, junk, 0o644)
	s, rec, err := openSpill(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	if rec.records != 0 || rec.corruptBytes != int64(len(junk)) || !s.empty() {
		t.Fatalf("recovery %+v, want the whole file set aside", rec)
	}
	if kept, _ := os.ReadFile(rec.quarantine); !bytes.Equal(kept, junk) {
		t.Fatal("quarantine does not hold the file")
	}
}

func TestSpillBadHeaderReplaysEverything(t *testing.T) {
	dir := t.TempDir()
	want := ptSpillRecords(6)
	ptWriteSpill(t, dir, want)
	s, _, _ := openSpill(dir)
	all := ptReadSpill(t, s)
	s.commit(all[3].off)
	s.close()
	path := filepath.Join(dir, spillFileName)
	data, _ := os.ReadFile(path)
	data[9] ^= 0xff // the cursor no longer matches its CRC
	os.WriteFile(path, data, 0o644)

	s, rec, err := openSpill(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	if !rec.headerReset || rec.records != 6 {
		t.Fatalf("recovery %+v, want a header reset and all 6 records (duplicates beat losses)", rec)
	}
}

func TestSpillCursorPastEndIsEmpty(t *testing.T) {
	// A crash between truncating a fully replayed spill and rewriting its header.
	dir := t.TempDir()
	ptWriteSpill(t, dir, ptSpillRecords(5))
	s, _, _ := openSpill(dir)
	s.cursor = s.end
	s.writeHeader()
	s.f.Truncate(spillHeaderSize)
	s.close()
	s, rec, err := openSpill(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	if rec.records != 0 || rec.headerReset || !s.empty() {
		t.Fatalf("recovery %+v, want an empty spill", rec)
	}
}

func TestSpillOneOpenPerDir(t *testing.T) {
	dir := t.TempDir()
	s, _, err := openSpill(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := openSpill(dir); err == nil {
		t.Fatal("second open of one spill dir succeeded")
	}
	s.close()
	s, _, err = openSpill(dir)
	if err != nil {
		t.Fatalf("open after close: %v", err)
	}
	s.close()
}

// FuzzSpillOpen: whatever the file holds, opening it does not fail or panic, and every record it
// keeps reads back.
func FuzzSpillOpen(f *testing.F) {
	dir := f.TempDir()
	ptWriteSpill(f, dir, ptSpillRecords(4))
	good, _ := os.ReadFile(filepath.Join(dir, spillFileName))
	f.Add(good)
	f.Add(good[:len(good)-3])
	f.Add(good[:spillHeaderSize])
	f.Add([]byte{})
	f.Add([]byte(spillMagic))
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, spillFileName), data, 0o644); err != nil {
			t.Fatal(err)
		}
		s, rec, err := openSpill(dir)
		if err != nil {
			t.Fatal(err)
		}
		defer s.close()
		if got := ptReadSpill(t, s); len(got) != rec.records {
			t.Fatalf("%d records read back, open counted %d", len(got), rec.records)
		}
	})
}
