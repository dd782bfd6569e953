package events

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// The spill is where money events go when they cannot go to Kafka: one append-only file per
// producer, SpillDir/money.spill, replayed in order and truncated once Kafka has acknowledged all of
// it.
//
// Layout (all integers little endian):
//
//	header, 32 bytes:  magic "RTBSPIL\x01" | cursor u64 | crc32c(magic, cursor) u32 | zero padding
//	record:            body length u32 | crc32c(body) u32 | body
//	body:              version u8 (1) | flags u8 | topic length u8 | topic |
//	                   partition i32 | floor i64 | key length u32 | key | value
//
// cursor is the offset of the first record Kafka has not acknowledged; records before it were
// replayed and are only waiting for the truncation that happens when the whole file is replayed.
// partition and floor say where an earlier attempt of the record may already have landed (-1 when
// no attempt could have): a record whose send failed without an answer may be on Kafka after all,
// and before replaying it the producer reads that partition from floor on to skip it if it is.
//
// Every batch of records is written with one write and made durable with fsync before the events
// count as spilled. A crash can leave a torn last record (or, on a bad disk, a corrupt one); the
// CRC finds it on open, the good records before it are kept and replayed, and the bytes from the
// first bad record on are moved to a money.spill.corrupt-* file next to the spill (for forensics:
// they are not replayed, because a record that fails its CRC cannot be trusted as money) and
// counted.
const (
	spillFileName    = "money.spill"
	spillMagic       = "RTBSPIL\x01"
	spillHeaderSize  = 32
	spillFrameSize   = 8       // length + crc
	spillMaxBody     = 8 << 20 // larger lengths are corruption: events are a few hundred bytes
	spillBodyVersion = 1
	spillFlagSent    = 1 // the record was sent to Kafka once without an answer
)

var spillCRC = crc32.MakeTable(crc32.Castagnoli)

// errSpillCorrupt is returned by spillLog.read for a record that fails its checks.
var errSpillCorrupt = errors.New("corrupt spill record")

// spillPaths guards against two producers of one process sharing a spill file: they would replay
// each other's records.
var spillPaths sync.Map

// spillRec is one record read back from the spill. key and value alias the read buffer.
type spillRec struct {
	off        int64 // file offset of the record
	size       int64 // bytes it takes in the file, frame included
	topic      string
	flags      uint8
	part       int32
	floor      int64
	key, value []byte
}

// spillRecovery describes what openSpill found.
type spillRecovery struct {
	records      int   // unreplayed records
	bytes        int64 // their size
	corruptBytes int64 // bytes moved out of the spill because they failed their checks
	corruptAt    int64 // offset of the first bad byte, when corruptBytes > 0
	quarantine   string
	headerReset  bool // the header was unreadable: everything in the file is replayed again
}

// spillLog is the spill file. It is not safe for concurrent use: the producer's money goroutine
// owns it.
type spillLog struct {
	path   string
	f      *os.File
	cursor int64  // first unacknowledged record
	end    int64  // end of the last record on disk
	buf    []byte // framed records not yet on disk
	bufN   int    // records in buf
	hdr    [spillHeaderSize]byte
}

// openSpill opens (creating it and dir if missing) the spill of dir, checks the records not yet
// replayed and cuts a torn or corrupt tail off, keeping it aside.
func openSpill(dir string) (*spillLog, spillRecovery, error) {
	var rec spillRecovery
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, rec, fmt.Errorf("spill dir %s: %w", dir, err)
	}
	path, err := filepath.Abs(filepath.Join(dir, spillFileName))
	if err != nil {
		return nil, rec, fmt.Errorf("spill path: %w", err)
	}
	if _, busy := spillPaths.LoadOrStore(path, true); busy {
		return nil, rec, fmt.Errorf("spill %s is already open in this process: each producer needs its own SpillDir", path)
	}
	s, rec, err := openSpillFile(path)
	if err != nil {
		spillPaths.Delete(path)
		return nil, rec, err
	}
	return s, rec, nil
}

func openSpillFile(path string) (*spillLog, spillRecovery, error) {
	var rec spillRecovery
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, rec, fmt.Errorf("open spill: %w", err)
	}
	s := &spillLog{path: path, f: f}
	fail := func(err error) (*spillLog, spillRecovery, error) {
		s.f.Close()
		return nil, rec, err
	}
	st, err := f.Stat()
	if err != nil {
		return fail(fmt.Errorf("spill %s: %w", path, err))
	}
	size := st.Size()
	if size < spillHeaderSize {
		// New, or torn while being created (nothing can follow a header that was never written).
		if err := s.reset(); err != nil {
			return fail(err)
		}
		if err := syncDir(filepath.Dir(path)); err != nil {
			return fail(err)
		}
		return s, rec, nil
	}
	if _, err := f.ReadAt(s.hdr[:], 0); err != nil {
		return fail(fmt.Errorf("spill %s: read header: %w", path, err))
	}
	if string(s.hdr[:8]) != spillMagic {
		// Not a spill this code wrote: keep it aside whole and start afresh.
		q, err := s.quarantine(0, size)
		if err != nil {
			return fail(err)
		}
		rec.corruptBytes, rec.corruptAt, rec.quarantine = size, 0, q
		if err := s.reset(); err != nil {
			return fail(err)
		}
		return s, rec, nil
	}
	s.cursor = int64(binary.LittleEndian.Uint64(s.hdr[8:16]))
	if crc32.Checksum(s.hdr[:16], spillCRC) != binary.LittleEndian.Uint32(s.hdr[16:20]) {
		s.cursor, rec.headerReset = spillHeaderSize, true
	}
	switch {
	case s.cursor < spillHeaderSize:
		s.cursor, rec.headerReset = spillHeaderSize, true
	case s.cursor > size:
		// The file was truncated after a full replay and the process stopped before the header
		// caught up; or the header lies. Either way what is in the file was not replayed.
		if size > spillHeaderSize {
			rec.headerReset = true
		}
		s.cursor = spillHeaderSize
	}
	// Check every record not yet replayed.
	recs, bad, err := scanSpill(f, s.cursor, size)
	if err != nil {
		return fail(fmt.Errorf("spill %s: %w", path, err))
	}
	rec.records = recs
	off := size
	if len(bad) > 0 {
		q, n, err := s.keepAside(bad)
		if err != nil {
			return fail(err)
		}
		rec.corruptBytes, rec.corruptAt, rec.quarantine = n, bad[0].from, q
		if last := bad[len(bad)-1]; len(bad) == 1 && last.to == size {
			// Only the tail is bad (the usual torn last write): cut it off.
			if err := f.Truncate(last.from); err != nil {
				return fail(fmt.Errorf("spill %s: cut corrupt tail at %d: %w", path, last.from, err))
			}
			if err := f.Sync(); err != nil {
				return fail(fmt.Errorf("spill %s: sync: %w", path, err))
			}
			off = last.from
		} else {
			// Good records follow a bad one: they are money too. Rewrite the spill with the good
			// records alone (a new file renamed over the old one, so a crash leaves one or the
			// other whole).
			if off, err = s.rebuild(bad, size); err != nil {
				return fail(err)
			}
		}
	}
	s.end = off
	rec.bytes = s.end - s.cursor
	if rec.headerReset {
		if err := s.writeHeader(); err != nil {
			return fail(err)
		}
	}
	if s.cursor >= s.end && s.end > spillHeaderSize {
		if err := s.reset(); err != nil { // fully replayed: tidy up
			return fail(err)
		}
	}
	return s, rec, nil
}

// spillSpan is a range [from, to) of the spill file.
type spillSpan struct{ from, to int64 }

// scanSpill checks the records of f from off to size. It returns how many are good and the spans
// that are not. After a bad record it resynchronises: on the next record when the bad one's length
// is intact (a flipped bit in a body), else on the next offset where a whole record passes its
// checks, so that one bad record does not take the good ones after it along.
func scanSpill(f io.ReaderAt, off, size int64) (good int, bad []spillSpan, err error) {
	var body []byte
	// validAt reports the size of a record at o that passes every check, 0 if none does.
	validAt := func(o int64) (int64, error) {
		var frame [spillFrameSize]byte
		if size-o < spillFrameSize {
			return 0, nil
		}
		if _, err := f.ReadAt(frame[:], o); err != nil {
			return 0, fmt.Errorf("read at %d: %w", o, err)
		}
		n := int64(binary.LittleEndian.Uint32(frame[:4]))
		if n < 3 || n > spillMaxBody || o+spillFrameSize+n > size {
			return 0, nil
		}
		if int64(cap(body)) < n {
			body = make([]byte, n)
		}
		body = body[:n]
		if _, err := f.ReadAt(body, o+spillFrameSize); err != nil {
			return 0, fmt.Errorf("read at %d: %w", o, err)
		}
		if crc32.Checksum(body, spillCRC) != binary.LittleEndian.Uint32(frame[4:8]) {
			return 0, nil
		}
		if _, err := decodeSpillBody(body); err != nil {
			return 0, nil
		}
		return spillFrameSize + n, nil
	}
	for off < size {
		n, err := validAt(off)
		if err != nil {
			return good, bad, err
		}
		if n > 0 {
			good++
			off += n
			continue
		}
		next := size
		var frame [spillFrameSize]byte
		if size-off >= spillFrameSize {
			if _, err := f.ReadAt(frame[:], off); err != nil {
				return good, bad, fmt.Errorf("read at %d: %w", off, err)
			}
			if l := int64(binary.LittleEndian.Uint32(frame[:4])); l <= spillMaxBody && off+spillFrameSize+l < size {
				if m, err := validAt(off + spillFrameSize + l); err != nil {
					return good, bad, err
				} else if m > 0 {
					next = off + spillFrameSize + l
				}
			}
		}
		for o := off + 1; next == size && o+spillFrameSize <= size; o++ {
			m, err := validAt(o)
			if err != nil {
				return good, bad, err
			}
			if m > 0 {
				next = o
			}
		}
		bad = append(bad, spillSpan{off, next})
		off = next
	}
	return good, bad, nil
}

// keepAside copies the bad spans of the spill, in order, to a new file next to it (for forensics:
// a record that fails its checks cannot be trusted as money, so it is never replayed) and makes
// the copy durable. It returns the file and the bytes copied.
func (s *spillLog) keepAside(bad []spillSpan) (string, int64, error) {
	q := fmt.Sprintf("%s.corrupt-%s", s.path, time.Now().UTC().Format("20060102T150405.000000000Z"))
	out, err := os.OpenFile(q, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return "", 0, fmt.Errorf("spill %s: keep corrupt records: %w", s.path, err)
	}
	var n int64
	for _, b := range bad {
		c, err := io.Copy(out, io.NewSectionReader(s.f, b.from, b.to-b.from))
		n += c
		if err != nil {
			out.Close()
			return "", n, fmt.Errorf("spill %s: keep corrupt records in %s: %w", s.path, q, err)
		}
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return "", n, fmt.Errorf("spill %s: sync %s: %w", s.path, q, err)
	}
	if err := out.Close(); err != nil {
		return "", n, fmt.Errorf("spill %s: close %s: %w", s.path, q, err)
	}
	return q, n, syncDir(filepath.Dir(s.path))
}

// rebuild replaces the spill with one holding its records from the cursor to size except the bad
// spans, and returns the new end. The cursor becomes the first record.
func (s *spillLog) rebuild(bad []spillSpan, size int64) (int64, error) {
	tmp := s.path + ".rebuild"
	out, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return 0, fmt.Errorf("spill %s: rebuild: %w", s.path, err)
	}
	failed := func(err error) (int64, error) {
		out.Close()
		os.Remove(tmp)
		return 0, fmt.Errorf("spill %s: rebuild: %w", s.path, err)
	}
	var hdr [spillHeaderSize]byte
	copy(hdr[:8], spillMagic)
	binary.LittleEndian.PutUint64(hdr[8:16], spillHeaderSize)
	binary.LittleEndian.PutUint32(hdr[16:20], crc32.Checksum(hdr[:16], spillCRC))
	if _, err := out.Write(hdr[:]); err != nil {
		return failed(err)
	}
	end := int64(spillHeaderSize)
	from := s.cursor
	for _, b := range append(bad, spillSpan{size, size}) {
		n, err := io.Copy(out, io.NewSectionReader(s.f, from, b.from-from))
		end += n
		if err != nil {
			return failed(err)
		}
		from = b.to
	}
	if err := out.Sync(); err != nil {
		return failed(err)
	}
	if err := os.Rename(tmp, s.path); err != nil {
		return failed(err)
	}
	if err := syncDir(filepath.Dir(s.path)); err != nil {
		out.Close()
		return 0, err
	}
	s.f.Close()
	s.f, s.hdr, s.cursor = out, hdr, spillHeaderSize
	return end, nil
}

// quarantine copies bytes [from, size) of the spill to a new file next to it, makes the copy
// durable, and cuts the spill at from.
func (s *spillLog) quarantine(from, size int64) (string, error) {
	q := fmt.Sprintf("%s.corrupt-%s", s.path, time.Now().UTC().Format("20060102T150405.000000000Z"))
	out, err := os.OpenFile(q, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return "", fmt.Errorf("spill %s: keep corrupt tail: %w", s.path, err)
	}
	if _, err := io.Copy(out, io.NewSectionReader(s.f, from, size-from)); err != nil {
		out.Close()
		return "", fmt.Errorf("spill %s: keep corrupt tail in %s: %w", s.path, q, err)
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return "", fmt.Errorf("spill %s: sync %s: %w", s.path, q, err)
	}
	if err := out.Close(); err != nil {
		return "", fmt.Errorf("spill %s: close %s: %w", s.path, q, err)
	}
	if err := syncDir(filepath.Dir(s.path)); err != nil {
		return "", err
	}
	if err := s.f.Truncate(from); err != nil {
		return "", fmt.Errorf("spill %s: cut corrupt tail at %d: %w", s.path, from, err)
	}
	if err := s.f.Sync(); err != nil {
		return "", fmt.Errorf("spill %s: sync: %w", s.path, err)
	}
	return q, nil
}

// add frames one record into the write buffer; flush makes it durable.
func (s *spillLog) add(topic string, flags uint8, part int32, floor int64, key, value []byte) {
	n := 3 + len(topic) + 4 + 8 + 4 + len(key) + len(value)
	s.buf = binary.LittleEndian.AppendUint32(s.buf, uint32(n))
	s.buf = binary.LittleEndian.AppendUint32(s.buf, 0) // crc, below
	start := len(s.buf)
	s.buf = append(s.buf, spillBodyVersion, flags, byte(len(topic)))
	s.buf = append(s.buf, topic...)
	s.buf = binary.LittleEndian.AppendUint32(s.buf, uint32(part))
	s.buf = binary.LittleEndian.AppendUint64(s.buf, uint64(floor))
	s.buf = binary.LittleEndian.AppendUint32(s.buf, uint32(len(key)))
	s.buf = append(s.buf, key...)
	s.buf = append(s.buf, value...)
	binary.LittleEndian.PutUint32(s.buf[start-4:start], crc32.Checksum(s.buf[start:], spillCRC))
	s.bufN++
}

// flush writes the buffered records after the last one on disk and fsyncs. On error the records
// stay buffered and the next flush writes them again at the same offset.
func (s *spillLog) flush() error {
	if len(s.buf) == 0 {
		return nil
	}
	if _, err := s.f.WriteAt(s.buf, s.end); err != nil {
		return fmt.Errorf("spill %s: write %d records: %w", s.path, s.bufN, err)
	}
	if err := s.f.Sync(); err != nil {
		return fmt.Errorf("spill %s: fsync %d records: %w", s.path, s.bufN, err)
	}
	s.end += int64(len(s.buf))
	s.buf, s.bufN = s.buf[:0], 0
	if cap(s.buf) > 4<<20 {
		s.buf = nil // do not keep an outage's worth of buffer
	}
	return nil
}

// read parses the records from off on, at most maxRecs of them and about maxBytes (at least one
// record), into buf. It returns them, the buffer, and errSpillCorrupt (with the records before the
// bad one) when a record fails its checks.
func (s *spillLog) read(off int64, maxRecs, maxBytes int, buf []byte) ([]spillRec, []byte, error) {
	n := s.end - off
	if n <= 0 {
		return nil, buf, nil
	}
	if n > int64(maxBytes) {
		n = int64(maxBytes)
	}
	if n < spillFrameSize {
		n = min(spillFrameSize, s.end-off)
	}
	grow := func(n int64) {
		if int64(cap(buf)) < n {
			buf = make([]byte, n)
		}
		buf = buf[:n]
	}
	grow(n)
	if _, err := s.f.ReadAt(buf, off); err != nil {
		return nil, buf, fmt.Errorf("spill %s: read at %d: %w", s.path, off, err)
	}
	if len(buf) >= spillFrameSize {
		if l := int64(binary.LittleEndian.Uint32(buf)); l <= spillMaxBody && spillFrameSize+l > n && off+spillFrameSize+l <= s.end {
			grow(spillFrameSize + l) // one record larger than maxBytes
			if _, err := s.f.ReadAt(buf, off); err != nil {
				return nil, buf, fmt.Errorf("spill %s: read at %d: %w", s.path, off, err)
			}
		}
	}
	var recs []spillRec
	pos := int64(0)
	for len(recs) < maxRecs && pos+spillFrameSize <= int64(len(buf)) {
		l := int64(binary.LittleEndian.Uint32(buf[pos:]))
		if l > spillMaxBody || off+pos+spillFrameSize+l > s.end {
			return recs, buf, fmt.Errorf("%w at offset %d of %s: length %d", errSpillCorrupt, off+pos, s.path, l)
		}
		if pos+spillFrameSize+l > int64(len(buf)) {
			break // continues in the next read
		}
		body := buf[pos+spillFrameSize : pos+spillFrameSize+l]
		if crc32.Checksum(body, spillCRC) != binary.LittleEndian.Uint32(buf[pos+4:]) {
			return recs, buf, fmt.Errorf("%w at offset %d of %s: checksum", errSpillCorrupt, off+pos, s.path)
		}
		r, err := decodeSpillBody(body)
		if err != nil {
			return recs, buf, fmt.Errorf("%w at offset %d of %s: %v", errSpillCorrupt, off+pos, s.path, err)
		}
		r.off, r.size = off+pos, spillFrameSize+l
		recs = append(recs, r)
		pos += spillFrameSize + l
	}
	if len(recs) == 0 && maxRecs > 0 {
		// A whole record always fits the read above: these bytes cannot be one.
		return nil, buf, fmt.Errorf("%w at offset %d of %s: truncated", errSpillCorrupt, off, s.path)
	}
	return recs, buf, nil
}

func decodeSpillBody(b []byte) (spillRec, error) {
	var r spillRec
	if len(b) < 3 || b[0] != spillBodyVersion {
		return r, errors.New("unknown record version")
	}
	r.flags = b[1]
	tl := int(b[2])
	b = b[3:]
	if len(b) < tl+4+8+4 {
		return r, errors.New("short record")
	}
	r.topic = string(b[:tl])
	b = b[tl:]
	r.part = int32(binary.LittleEndian.Uint32(b))
	r.floor = int64(binary.LittleEndian.Uint64(b[4:]))
	kl := int64(binary.LittleEndian.Uint32(b[12:]))
	b = b[16:]
	if int64(len(b)) < kl {
		return r, errors.New("short key")
	}
	r.key, r.value = b[:kl:kl], b[kl:]
	return r, nil
}

// commit records that everything before cursor is acknowledged by Kafka; when that is the whole
// spill the file is truncated.
func (s *spillLog) commit(cursor int64) error {
	s.cursor = cursor
	if s.cursor >= s.end && len(s.buf) == 0 {
		return s.reset()
	}
	return s.writeHeader()
}

// reset empties the spill. The truncation comes before the header: a crash in between leaves a
// cursor past the end, which open reads as empty.
func (s *spillLog) reset() error {
	if err := s.f.Truncate(spillHeaderSize); err != nil {
		return fmt.Errorf("spill %s: truncate: %w", s.path, err)
	}
	s.cursor, s.end = spillHeaderSize, spillHeaderSize
	return s.writeHeader()
}

func (s *spillLog) writeHeader() error {
	copy(s.hdr[:8], spillMagic)
	binary.LittleEndian.PutUint64(s.hdr[8:16], uint64(s.cursor))
	binary.LittleEndian.PutUint32(s.hdr[16:20], crc32.Checksum(s.hdr[:16], spillCRC))
	if _, err := s.f.WriteAt(s.hdr[:], 0); err != nil {
		return fmt.Errorf("spill %s: write header: %w", s.path, err)
	}
	if err := s.f.Sync(); err != nil {
		return fmt.Errorf("spill %s: fsync header: %w", s.path, err)
	}
	return nil
}

// empty reports whether nothing waits for replay, on disk or in the buffer.
func (s *spillLog) empty() bool { return s.cursor >= s.end && len(s.buf) == 0 }

// pendingBytes is what waits for replay, on disk and in the buffer.
func (s *spillLog) pendingBytes() int64 { return s.end - s.cursor + int64(len(s.buf)) }

// close makes the file durable and closes it; buffered records that could not be written are the
// caller's to report.
func (s *spillLog) close() error {
	defer spillPaths.Delete(s.path)
	err := s.f.Sync()
	if cerr := s.f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("spill %s: close: %w", s.path, err)
	}
	return nil
}

// syncDir makes a file's creation or removal in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync dir %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync dir %s: %w", dir, err)
	}
	return nil
}

// cutCorrupt moves the records from off to the end of the file aside, after a record read back at
// off failed its checks. It returns where they went and how many bytes they were.
func (s *spillLog) cutCorrupt(off int64) (string, int64, error) {
	n := s.end - off
	q, err := s.quarantine(off, s.end)
	if err != nil {
		return "", 0, err
	}
	s.end = off
	return q, n, nil
}
