package openrtb

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"math/bits"
	"reflect"
	"strconv"
	"unicode/utf8"
	"unsafe"
)

// MaxDepth bounds the nesting of objects and arrays in a request, ext included: the recursion of the
// scanner must not be the attacker's to choose. OpenRTB itself nests about eight deep.
const MaxDepth = 64

// syntaxError is input that is not JSON; pos is the offset of the offending byte.
type syntaxError struct {
	pos int
	msg string
}

func (e *syntaxError) Error() string { return fmt.Sprintf("%s at byte %d", e.msg, e.pos) }

// typeError is JSON of a type the field cannot hold; pos is the offset of the value.
type typeError struct {
	pos  int
	want string
}

func (e *typeError) Error() string {
	return fmt.Sprintf("value at byte %d has the wrong type (want %s)", e.pos, e.want)
}

// duplicateKeyError is an object that names one of the model's fields twice: JSON leaves what that
// means to each decoder (RFC 8259 §4), so the exchange, its validators and we could read different
// requests (two floors, two ids) from the same bytes.
type duplicateKeyError struct {
	pos int
	key string
}

func (e *duplicateKeyError) Error() string {
	return fmt.Sprintf("duplicate key %q at byte %d", e.key, e.pos)
}

// scanner decodes one JSON document. It is strict JSON (RFC 8259): no NaN or Infinity, no leading
// zeros, no control characters or invalid UTF-8 in strings, no unknown escapes, nothing after the
// value, no field of the model named twice in an object; and lenient where OpenRTB needs it or real
// exchanges send otherwise (README, "Lenient where real exchanges are"): unknown fields are skipped,
// integers may be written as integral numbers (300.0), integers beyond a field's range saturate
// rather than refuse the request (exchange-specific enum values are legal; code reads them as
// unknown), a number may be written as a string holding exactly a JSON number ("728"; "" is
// absent), ids may be numbers, keywords an array of strings, and video.protocol an array.
type scanner struct {
	b []byte
	i int
	a *arena
}

func (s *scanner) syntax(msg string) error {
	if s.i >= len(s.b) {
		return &syntaxError{pos: len(s.b), msg: "unexpected end of input"}
	}
	return &syntaxError{pos: s.i, msg: msg}
}

func (s *scanner) ws() {
	if s.i < len(s.b) && s.b[s.i] > ' ' {
		return
	}
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

func (s *scanner) peek() byte {
	if s.i < len(s.b) {
		return s.b[s.i]
	}
	return 0
}

// document decodes the whole input as one object of plan p at ptr.
func (s *scanner) document(p *plan, ptr unsafe.Pointer) error {
	s.ws()
	switch s.peek() {
	case '{':
		if err := s.object(p, ptr, 1); err != nil {
			return err
		}
	case 'n':
		// null decodes to nothing, as encoding/json has it; validation says what is missing.
		if err := s.literal("null"); err != nil {
			return err
		}
	default:
		start := s.i
		if err := s.skip(1); err != nil {
			return err
		}
		return &typeError{pos: start, want: "object"}
	}
	s.ws()
	if s.i < len(s.b) {
		return s.syntax("invalid char")
	}
	return nil
}

// object decodes the object at s.i into the struct of plan p at ptr, skipping unknown keys. A field
// named twice is refused; unknown keys (ext among them, kept raw) are not checked for repeats.
func (s *scanner) object(p *plan, ptr unsafe.Pointer, depth int) error {
	if depth > MaxDepth {
		return s.syntax("nesting deeper than " + strconv.Itoa(MaxDepth))
	}
	s.i++ // '{'
	s.ws()
	if s.peek() == '}' {
		s.i++
		return nil
	}
	var seen [maxFields / 64]uint64
	for {
		if s.peek() != '"' {
			return s.syntax("invalid char")
		}
		at := s.i
		key, w, err := s.key()
		if err != nil {
			return err
		}
		if err := s.colon(); err != nil {
			return err
		}
		if f := p.lookup(key, w); f != nil {
			bit := uint64(1) << (f.idx & 63)
			if seen[f.idx>>6]&bit != 0 {
				return &duplicateKeyError{pos: at, key: f.name}
			}
			seen[f.idx>>6] |= bit
			err = s.field(f, unsafe.Add(ptr, f.off), depth)
		} else {
			err = s.skip(depth)
		}
		if err != nil {
			return err
		}
		s.ws()
		switch s.peek() {
		case ',':
			s.i++
			s.ws()
		case '}':
			s.i++
			return nil
		default:
			return s.syntax("invalid char")
		}
	}
}

// field decodes the value at s.i into the field f at p.
func (s *scanner) field(f *field, p unsafe.Pointer, depth int) error {
	if s.peek() == 'n' {
		// null leaves a value as it is and empties a pointer, a slice, a raw message (to "null").
		start := s.i
		if err := s.literal("null"); err != nil {
			return err
		}
		switch f.kind {
		case kPtrInt8, kPtrInt64, kPtrStruct:
			*(*unsafe.Pointer)(p) = nil
		case kStrings, kInts, kInt64s, kStructs:
			(*sliceHeader)(p).len = 0
		case kRaw:
			*(*json.RawMessage)(p) = s.b[start:s.i:s.i]
		}
		return nil
	}
	if f.kind >= kInt8 && f.kind <= kPtrInt64 || f.kind == kIntList {
		if len(s.b)-s.i >= 2 && s.b[s.i] == '"' && s.b[s.i+1] == '"' {
			// An empty string for a number says no more than an absent field: left as it is.
			s.i += 2
			return nil
		}
	}
	switch f.kind {
	case kString:
		v, err := s.str()
		if err != nil {
			return err
		}
		*(*string)(p) = v
	case kID:
		if c := s.peek(); c == '-' || (c >= '0' && c <= '9') {
			// The number's text, every digit of it: ids beyond 2^53 must not round as floats would.
			start := s.i
			if _, err := s.number(); err != nil {
				return err
			}
			*(*string)(p) = unsafe.String(&s.b[start], s.i-start)
			return nil
		}
		v, err := s.str()
		if err != nil {
			return err
		}
		*(*string)(p) = v
	case kKeywords:
		if s.peek() == '[' {
			return s.keywords((*string)(p), depth)
		}
		v, err := s.str()
		if err != nil {
			return err
		}
		*(*string)(p) = v
	case kIntList:
		if s.peek() == '[' {
			return s.appendInts((*[]int)(unsafe.Add(p, f.list)), depth)
		}
		v, err := s.integer()
		if err != nil {
			return err
		}
		*(*int)(p) = int(v)
	case kInt8:
		v, err := s.integer()
		if err != nil {
			return err
		}
		*(*int8)(p) = sat8(v)
	case kInt:
		v, err := s.integer()
		if err != nil {
			return err
		}
		*(*int)(p) = int(v)
	case kInt64:
		v, err := s.integer()
		if err != nil {
			return err
		}
		*(*int64)(p) = v
	case kFloat64:
		v, err := s.float()
		if err != nil {
			return err
		}
		*(*float64)(p) = v
	case kPtrInt8:
		v, err := s.integer()
		if err != nil {
			return err
		}
		// A repeated key writes where the first one did rather than taking more of the arena.
		if q := *(**int8)(p); q != nil {
			*q = sat8(v)
		} else {
			*(**int8)(p) = s.a.int8(sat8(v))
		}
	case kPtrInt64:
		v, err := s.integer()
		if err != nil {
			return err
		}
		if q := *(**int64)(p); q != nil {
			*q = v
		} else {
			*(**int64)(p) = s.a.int64(v)
		}
	case kRaw:
		start := s.i
		if err := s.skip(depth); err != nil {
			return err
		}
		// The capacity stops at the value so that an append to the message cannot overwrite the body.
		*(*json.RawMessage)(p) = s.b[start:s.i:s.i]
	case kStruct:
		if s.peek() != '{' {
			return s.wrongType("object", depth)
		}
		return s.object(f.sub, p, depth+1)
	case kPtrStruct:
		if s.peek() != '{' {
			return s.wrongType("object", depth)
		}
		obj := *(*unsafe.Pointer)(p)
		if obj == nil {
			obj = s.a.get(f.sub)
			*(*unsafe.Pointer)(p) = obj
		}
		return s.object(f.sub, obj, depth+1)
	case kStrings:
		return s.strings((*[]string)(p), depth)
	case kInts:
		return s.ints((*[]int)(p), depth)
	case kInt64s:
		return s.int64s((*[]int64)(p), depth)
	case kStructs:
		return s.structs(f.sub, (*sliceHeader)(p), depth)
	}
	return nil
}

// wrongType reports the value at s.i as of the wrong type, unless it is not JSON at all.
func (s *scanner) wrongType(want string, depth int) error {
	start := s.i
	if err := s.skip(depth); err != nil {
		return err
	}
	return &typeError{pos: start, want: want}
}

// array consumes '[' and calls elem for each element with s.i at its first byte.
func (s *scanner) array(depth int, want string, elem func() error) error {
	if s.peek() != '[' {
		return s.wrongType(want, depth)
	}
	if depth+1 > MaxDepth {
		return s.syntax("nesting deeper than " + strconv.Itoa(MaxDepth))
	}
	s.i++
	s.ws()
	if s.peek() == ']' {
		s.i++
		return nil
	}
	for {
		if err := elem(); err != nil {
			return err
		}
		s.ws()
		switch s.peek() {
		case ',':
			s.i++
			s.ws()
		case ']':
			s.i++
			return nil
		default:
			return s.syntax("invalid char")
		}
	}
}

// A null element of an array is the element type's zero value, as with encoding/json.
func (s *scanner) null() bool {
	if len(s.b)-s.i >= 4 && string(s.b[s.i:s.i+4]) == "null" {
		s.i += 4
		return true
	}
	return false
}

func (s *scanner) strings(dst *[]string, depth int) error {
	out := (*dst)[:0]
	err := s.array(depth, "array", func() error {
		if s.null() {
			out = append(out, "")
			return nil
		}
		v, err := s.str()
		out = append(out, v)
		return err
	})
	*dst = out
	return err
}

func (s *scanner) ints(dst *[]int, depth int) error {
	out := (*dst)[:0]
	err := s.array(depth, "array", func() error {
		if s.null() {
			out = append(out, 0)
			return nil
		}
		v, err := s.integer()
		out = append(out, int(v))
		return err
	})
	*dst = out
	return err
}

// appendInts appends an array of integers to dst, for a field whose arrays belong in another.
func (s *scanner) appendInts(dst *[]int, depth int) error {
	out := *dst
	err := s.array(depth, "array", func() error {
		if s.null() {
			return nil
		}
		v, err := s.integer()
		out = append(out, int(v))
		return err
	})
	*dst = out
	return err
}

// keywords reads an array of strings into one string, its elements joined with commas (what the
// field holds when it is a string), in the arena.
func (s *scanner) keywords(dst *string, depth int) error {
	mark := len(s.a.buf)
	err := s.array(depth, "array", func() error {
		if s.null() {
			return nil
		}
		if s.peek() != '"' {
			return s.wrongType("string", depth+1)
		}
		start, esc, err := s.scanString()
		if err != nil {
			return err
		}
		if len(s.a.buf) > mark {
			s.a.buf = append(s.a.buf, ',')
		}
		if esc {
			s.a.buf = unescape(s.a.buf, s.b[start:s.i-1])
		} else {
			s.a.buf = append(s.a.buf, s.b[start:s.i-1]...)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if len(s.a.buf) == mark {
		*dst = ""
	} else {
		*dst = unsafe.String(&s.a.buf[mark], len(s.a.buf)-mark)
	}
	return nil
}

func (s *scanner) int64s(dst *[]int64, depth int) error {
	out := (*dst)[:0]
	err := s.array(depth, "array", func() error {
		if s.null() {
			out = append(out, 0)
			return nil
		}
		v, err := s.integer()
		out = append(out, v)
		return err
	})
	*dst = out
	return err
}

// structs decodes an array of objects of plan p into the slice h, reusing its elements (and their
// own slices) from earlier decodes. Imps beyond MaxImps+1 are decoded, unreset, over the last one and
// only counted: the request is refused for its count, checked as JSON, and its arena does not grow
// with it.
func (s *scanner) structs(p *plan, h *sliceHeader, depth int) error {
	h.len = 0
	isImp := p == impPlan
	n := 0
	return s.array(depth, "array", func() error {
		n++
		over := isImp && h.len == MaxImps+1
		if over {
			s.a.imps = n
		} else {
			if h.len == h.cap {
				reflect.NewAt(p.slice, unsafe.Pointer(h)).Elem().Grow(max(4, h.cap))
			}
			h.len++
		}
		elem := unsafe.Add(h.data, uintptr(h.len-1)*p.size)
		if !over {
			p.reset(elem)
		}
		if s.null() {
			return nil
		}
		if s.peek() != '{' {
			return s.wrongType("object", depth+1)
		}
		return s.object(p, elem, depth+2)
	})
}

// literal consumes the literal lit (true, false, null).
func (s *scanner) literal(lit string) error {
	for k := 0; k < len(lit); k++ {
		if s.i >= len(s.b) || s.b[s.i] != lit[k] {
			return s.syntax("invalid char")
		}
		s.i++
	}
	return nil
}

// skip consumes one value of any type, checking that it is JSON.
func (s *scanner) skip(depth int) error {
	switch c := s.peek(); c {
	case '"':
		_, _, err := s.scanString()
		return err
	case '{':
		if depth+1 > MaxDepth {
			return s.syntax("nesting deeper than " + strconv.Itoa(MaxDepth))
		}
		s.i++
		s.ws()
		if s.peek() == '}' {
			s.i++
			return nil
		}
		for {
			if s.peek() != '"' {
				return s.syntax("invalid char")
			}
			if _, _, err := s.scanString(); err != nil {
				return err
			}
			if err := s.colon(); err != nil {
				return err
			}
			if err := s.skip(depth + 1); err != nil {
				return err
			}
			s.ws()
			switch s.peek() {
			case ',':
				s.i++
				s.ws()
			case '}':
				s.i++
				return nil
			default:
				return s.syntax("invalid char")
			}
		}
	case '[':
		return s.array(depth, "array", func() error { return s.skip(depth + 1) })
	case 't':
		return s.literal("true")
	case 'f':
		return s.literal("false")
	case 'n':
		return s.literal("null")
	default:
		if c == '-' || (c >= '0' && c <= '9') {
			_, err := s.number()
			return err
		}
		return s.syntax("invalid char")
	}
}

// number consumes a JSON number and reports whether it is an integer in its plain form (no
// fraction, no exponent).
func (s *scanner) number() (plain bool, err error) {
	b, i := s.b, s.i
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
	default:
		s.i = i
		return false, s.syntax("invalid char")
	}
	plain = true
	if i < len(b) && b[i] == '.' {
		plain = false
		i++
		if i >= len(b) || b[i] < '0' || b[i] > '9' {
			s.i = i
			return false, s.syntax("invalid char")
		}
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		plain = false
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i >= len(b) || b[i] < '0' || b[i] > '9' {
			s.i = i
			return false, s.syntax("invalid char")
		}
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
	}
	s.i = i
	return plain, nil
}

// integer reads a number as an integer, saturating at the int64 range. Integral numbers in any form
// (300.0, 3e2) are integers; a fraction is a type error.
func (s *scanner) integer() (int64, error) {
	start := s.i
	c := s.peek()
	if c == '"' {
		t, empty, err := s.quoted("integer")
		if err != nil || empty {
			return 0, err
		}
		v, err := t.integer()
		return v, t.whole(err, start, "integer")
	}
	if c != '-' && (c < '0' || c > '9') {
		return 0, s.wrongType("integer", 0)
	}
	plain, err := s.number()
	if err != nil {
		return 0, err
	}
	digits := s.b[start:s.i]
	if plain && len(digits) <= 18 {
		neg := digits[0] == '-'
		if neg {
			digits = digits[1:]
		}
		var v int64
		for _, d := range digits {
			v = v*10 + int64(d-'0')
		}
		if neg {
			v = -v
		}
		return v, nil
	}
	if plain {
		// ParseInt saturates, and unlike a float keeps every digit of the 19 that fit.
		v, _ := strconv.ParseInt(unsafe.String(&digits[0], len(digits)), 10, 64)
		return v, nil
	}
	f, err := strconv.ParseFloat(unsafe.String(&digits[0], len(digits)), 64)
	if err != nil && !math.IsInf(f, 0) {
		// Underflow: 1e-400 is no integer.
		return 0, &typeError{pos: start, want: "integer"}
	}
	if f != math.Trunc(f) {
		return 0, &typeError{pos: start, want: "integer"}
	}
	switch {
	case f >= math.MaxInt64:
		return math.MaxInt64, nil
	case f <= math.MinInt64:
		return math.MinInt64, nil
	}
	return int64(f), nil
}

func sat8(v int64) int8 {
	return int8(min(max(v, math.MinInt8), math.MaxInt8))
}

// float reads a number; one beyond the float64 range is refused rather than read as infinity.
func (s *scanner) float() (float64, error) {
	start := s.i
	c := s.peek()
	if c == '"' {
		t, empty, err := s.quoted("number")
		if err != nil || empty {
			return 0, err
		}
		v, err := t.float()
		return v, t.whole(err, start, "number")
	}
	if c != '-' && (c < '0' || c > '9') {
		return 0, s.wrongType("number", 0)
	}
	if _, err := s.number(); err != nil {
		return 0, err
	}
	f, err := strconv.ParseFloat(unsafe.String(&s.b[start], s.i-start), 64)
	if err != nil && math.IsInf(f, 0) {
		return 0, &syntaxError{pos: start, msg: "number out of range"}
	}
	return f, nil
}

// quoted reads a number written as a string, as some exchanges write numbers ("w":"728",
// "secure":"1"): it returns a scanner over the string's content, which the caller must read in full
// as a number; nil for "", which says as much as an absent field. Only the number itself may be in
// the string: no escapes, no white space, nothing JSON would not take as a number.
func (s *scanner) quoted(want string) (t scanner, empty bool, err error) {
	start := s.i
	from, esc, err := s.scanString()
	if err != nil {
		return t, false, err
	}
	if esc {
		return t, false, &typeError{pos: start, want: want}
	}
	t.b = s.b[from : s.i-1]
	return t, len(t.b) == 0, nil
}

// whole is the error of reading a quoted number (at pos) with t: the read's, or that it left some of
// the string unread.
func (t *scanner) whole(err error, pos int, want string) error {
	if err != nil || t.i != len(t.b) {
		return &typeError{pos: pos, want: want}
	}
	return nil
}

// scanString consumes the string at s.i, checking it, and returns the offsets of its content and
// whether it has escapes.
func (s *scanner) scanString() (start int, esc bool, err error) {
	b := s.b
	i := s.i + 1
	start = i
	for {
		// The common case, printable ASCII without escapes, eight bytes at a time.
		for {
			if i+8 <= len(b) {
				if m := special(binary.LittleEndian.Uint64(b[i:])); m != 0 {
					i += bits.TrailingZeros64(m) >> 3
					break
				}
				i += 8
				continue
			}
			for i < len(b) && plain[b[i]] {
				i++
			}
			break
		}
		if i >= len(b) {
			s.i = i
			return start, esc, s.syntax("unterminated string")
		}
		switch c := b[i]; {
		case c == '"':
			s.i = i + 1
			return start, esc, nil
		case c == '\\':
			esc = true
			i++
			if i >= len(b) {
				s.i = i
				return start, esc, s.syntax("unterminated string")
			}
			switch b[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i++
			case 'u':
				if _, ok := hex4(b, i+1); !ok {
					s.i = i
					return start, esc, s.syntax("invalid escape")
				}
				i += 5
			default:
				s.i = i
				return start, esc, s.syntax("invalid escape")
			}
		case c < 0x20:
			s.i = i
			return start, esc, s.syntax("control character in string")
		default:
			r, n := utf8.DecodeRune(b[i:])
			if r == utf8.RuneError && n == 1 {
				s.i = i
				return start, esc, s.syntax("invalid UTF-8 in string")
			}
			i += n
		}
	}
}

// plain is the bytes a string may hold as they are, and that end no string: printable ASCII but the
// quote and the backslash.
var plain = func() (t [256]bool) {
	for c := 0x20; c < 0x80; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// special flags (in the high bit of each byte) the bytes of x that are not plain. Only the lowest
// flag is exact: a borrow may flag a plain byte above a special one, which is all the caller reads.
func special(x uint64) uint64 {
	const lsb, msb = 0x0101010101010101, 0x8080808080808080
	q := x ^ (lsb * '"')
	bs := x ^ (lsb * '\\')
	t := (x - lsb*0x20) & ^x // a byte below 0x20
	t |= (q - lsb) & ^q      // a quote
	t |= (bs - lsb) & ^bs    // a backslash
	t |= x                   // a byte from 0x80
	return t & msb
}

func hex4(b []byte, i int) (rune, bool) {
	if i+4 > len(b) {
		return 0, false
	}
	var r rune
	for _, c := range b[i : i+4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		case c >= 'A' && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// str reads a string. Without escapes it aliases the input; with them it is unescaped into the
// arena.
func (s *scanner) str() (string, error) {
	if s.peek() != '"' {
		return "", s.wrongType("string", 0)
	}
	start, esc, err := s.scanString()
	if err != nil {
		return "", err
	}
	end := s.i - 1
	if end == start {
		return "", nil
	}
	if !esc {
		return unsafe.String(&s.b[start], end-start), nil
	}
	mark := len(s.a.buf)
	s.a.buf = unescape(s.a.buf, s.b[start:end])
	if len(s.a.buf) == mark {
		return "", nil
	}
	return unsafe.String(&s.a.buf[mark], len(s.a.buf)-mark), nil
}

// colon reads the ':' between an object key and its value, with the white space around it.
func (s *scanner) colon() error {
	s.ws()
	if s.peek() != ':' {
		return s.syntax("invalid char")
	}
	s.i++
	s.ws()
	return nil
}

// key reads an object key and its first eight bytes as a word (see plan.lookup). Keys are compared,
// not kept, so an escaped one is unescaped into the arena's spare capacity without advancing it.
func (s *scanner) key() ([]byte, uint64, error) {
	b, i := s.b, s.i+1
	// Most keys are short and plain: one load finds the closing quote and gives the word.
	if i+8 <= len(b) {
		x := binary.LittleEndian.Uint64(b[i:])
		if m := special(x); m != 0 {
			if n := bits.TrailingZeros64(m) >> 3; b[i+n] == '"' {
				s.i = i + n + 1
				return b[i : i+n], x & (1<<(8*n) - 1), nil
			}
		}
	}
	start, esc, err := s.scanString()
	if err != nil {
		return nil, 0, err
	}
	k := s.b[start : s.i-1]
	if esc {
		mark := len(s.a.buf)
		s.a.buf = unescape(s.a.buf, k)
		k = s.a.buf[mark:]
		s.a.buf = s.a.buf[:mark]
	}
	return k, keyWord(k), nil
}

// unescape appends the content of a checked string with its escapes resolved. A lone surrogate
// becomes U+FFFD, as with encoding/json.
func unescape(dst, src []byte) []byte {
	for i := 0; i < len(src); {
		c := src[i]
		if c != '\\' {
			j := i + 1
			for j < len(src) && src[j] != '\\' {
				j++
			}
			dst = append(dst, src[i:j]...)
			i = j
			continue
		}
		i++
		switch src[i] {
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			r, _ := hex4(src, i+1)
			i += 4
			if utf16IsHigh(r) && i+2 < len(src) && src[i+1] == '\\' && src[i+2] == 'u' {
				if lo, ok := hex4(src, i+3); ok && utf16IsLow(lo) {
					r = (r-0xD800)<<10 | (lo - 0xDC00) + 0x10000
					i += 6
				}
			}
			if r >= 0xD800 && r <= 0xDFFF {
				r = utf8.RuneError
			}
			dst = utf8.AppendRune(dst, r)
		default: // '"', '\\', '/'
			dst = append(dst, src[i])
		}
		i++
	}
	return dst
}

func utf16IsHigh(r rune) bool { return r >= 0xD800 && r < 0xDC00 }
func utf16IsLow(r rune) bool  { return r >= 0xDC00 && r < 0xE000 }

// rawInt reads the integer at key of the JSON object raw (the first, if repeated), for the few
// values the model leaves in ext.
func rawInt(raw []byte, key string) (int64, bool) {
	var a arena
	s := scanner{b: raw, a: &a}
	s.ws()
	if s.peek() != '{' {
		return 0, false
	}
	s.i++
	s.ws()
	for s.peek() == '"' {
		k, _, err := s.key()
		if err != nil {
			return 0, false
		}
		if s.colon() != nil {
			return 0, false
		}
		if string(k) == key {
			v, err := s.integer()
			return v, err == nil
		}
		if s.skip(1) != nil {
			return 0, false
		}
		s.ws()
		if s.peek() != ',' {
			return 0, false
		}
		s.i++
		s.ws()
	}
	return 0, false
}
