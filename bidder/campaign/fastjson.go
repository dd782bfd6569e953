package campaign

import (
	"reflect"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"
)

// decodeJSON decodes a JSON campaign file in one pass straight into the campaign types, with no node
// tree, no record of every field's line and no intermediate values: the checked path (parseJSON, the
// schema walk, yaml.v3's decoder) takes 30-45 s at 100,000 campaigns, this about one.
//
// It returns nil for anything but a plainly valid file, and Parse then runs the checked path, which
// explains what is wrong with file, campaign, field and line. So this decoder needs to be right only
// about what it accepts: a subset of what the checked path accepts (strict JSON, exact field names,
// each once, values of the field's own JSON type), decoded to the same values; TestFastPathAgrees
// holds it to that. Whatever it is unsure of (escaped keys, surrogate escapes, invalid UTF-8, a
// duration written as a number, a quoted number, deep nesting) it leaves to the checked path.
//
// Equal strings are stored once (a 100,000-campaign file repeats the same markup, landing URL, type
// and country codes hundreds of thousands of times): fewer heap objects for the collector to mark.
func decodeJSON(data []byte) []*Campaign {
	if !utf8.Valid(data) {
		return nil
	}
	d := &jsonDecoder{data: data, strs: make(map[string]string, 1024), scratch: map[*typePlan]reflect.Value{}}
	var f file
	d.skipSpace()
	if !d.object(fileFields(), reflect.ValueOf(&f).Elem(), 0, true) {
		return nil
	}
	if d.skipSpace(); d.pos != len(d.data) || len(f.Campaigns) == 0 {
		return nil
	}
	for _, c := range f.Campaigns {
		if c == nil {
			return nil
		}
	}
	return f.Campaigns
}

// valueKind is how a Go type is read from JSON.
type valueKind uint8

const (
	kindUnsupported valueKind = iota // anything the campaign types do not use: left to the checked path
	kindString
	kindInt
	kindFloat
	kindMicros
	kindDuration
	kindTime
	kindStruct
	kindPointer
	kindSlice
)

// typePlan is what the decoder needs to know about one Go type, computed once.
type typePlan struct {
	kind   valueKind
	typ    reflect.Type
	elem   *typePlan   // kindPointer, kindSlice
	fields []fieldPlan // kindStruct, in declaration order
}

type fieldPlan struct {
	name  string // in the file
	index int
	bit   uint64 // for duplicate detection; structs of the schema have fewer than 64 fields
	plan  *typePlan
}

// field finds the field named key, trying first the one after the previous (next): files written by
// a program list fields in declaration order, so a lookup is mostly one comparison.
func (p *typePlan) field(key []byte, next int) (int, bool) {
	for k := range p.fields {
		i := (next + k) % len(p.fields)
		if p.fields[i].name == string(key) {
			return i, true
		}
	}
	return 0, false
}

var (
	plansOnce sync.Once
	filePlan  *typePlan
)

func fileFields() *typePlan {
	plansOnce.Do(func() { filePlan = planOf(reflect.TypeOf(file{}), map[reflect.Type]*typePlan{}) })
	return filePlan
}

// planOf follows the checker's reading of the types (checker.walk), so that both paths agree on
// what a field is.
func planOf(t reflect.Type, seen map[reflect.Type]*typePlan) *typePlan {
	if p, ok := seen[t]; ok {
		return p
	}
	p := &typePlan{typ: t}
	seen[t] = p
	switch {
	case t == timeType:
		p.kind = kindTime
		return p
	case t == microsType:
		p.kind = kindMicros
		return p
	case t == durationType:
		p.kind = kindDuration
		return p
	}
	switch t.Kind() {
	case reflect.String:
		p.kind = kindString
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		p.kind = kindInt
	case reflect.Float32, reflect.Float64:
		p.kind = kindFloat
	case reflect.Pointer:
		p.kind, p.elem = kindPointer, planOf(t.Elem(), seen)
	case reflect.Slice:
		p.kind, p.elem = kindSlice, planOf(t.Elem(), seen)
	case reflect.Struct:
		if t.NumField() >= 64 {
			break // unsupported: the duplicate check has 64 bits
		}
		p.kind = kindStruct
		for i := 0; i < t.NumField(); i++ {
			name, ok := fileName(t.Field(i))
			if !ok {
				continue
			}
			p.fields = append(p.fields, fieldPlan{name: name, index: i, bit: 1 << uint(i), plan: planOf(t.Field(i).Type, seen)})
		}
	}
	return p
}

type jsonDecoder struct {
	data    []byte
	pos     int
	strs    map[string]string // interned strings
	buf     []byte            // scratch for unescaping
	scratch map[*typePlan]reflect.Value
}

func (d *jsonDecoder) skipSpace() {
	for d.pos < len(d.data) {
		switch d.data[d.pos] {
		case ' ', '\t', '\n', '\r':
			d.pos++
		default:
			return
		}
	}
}

// peek returns the next byte after white space, or 0 at the end.
func (d *jsonDecoder) peek() byte {
	d.skipSpace()
	if d.pos < len(d.data) {
		return d.data[d.pos]
	}
	return 0
}

func (d *jsonDecoder) consume(c byte) bool {
	if d.peek() == c {
		d.pos++
		return true
	}
	return false
}

func (d *jsonDecoder) literal(lit string) bool {
	if len(d.data)-d.pos >= len(lit) && string(d.data[d.pos:d.pos+len(lit)]) == lit {
		d.pos += len(lit)
		return true
	}
	return false
}

// value decodes one JSON value into v, of plan p. null leaves v at its zero value, as the checked path
// does.
func (d *jsonDecoder) value(p *typePlan, v reflect.Value, depth int) bool {
	if depth > maxDepth {
		return false
	}
	c := d.peek()
	if c == 'n' {
		return d.literal("null")
	}
	switch p.kind {
	case kindString:
		s, ok := d.str()
		if ok {
			v.SetString(s)
		}
		return ok
	case kindInt:
		num, ok := d.number()
		if !ok {
			return false
		}
		n, ok := parseInt(num)
		if !ok || v.OverflowInt(n) {
			return false
		}
		v.SetInt(n)
		return true
	case kindFloat:
		num, ok := d.number()
		if !ok {
			return false
		}
		f, err := strconv.ParseFloat(string(num), 64) // NaN and infinities are not JSON numbers; overflow is an error
		if err != nil {
			return false
		}
		v.SetFloat(f)
		return true
	case kindMicros:
		var m Micros
		var ok bool
		if c == '"' {
			var s []byte
			if s, ok = d.rawStr(); ok {
				m, ok = microsOf(s)
			}
		} else {
			var num []byte
			if num, ok = d.number(); ok {
				m, ok = microsOf(num)
			}
		}
		if ok {
			v.SetInt(int64(m))
		}
		return ok
	case kindDuration:
		s, ok := d.rawStr()
		if !ok {
			return false
		}
		dur, err := parseDuration(string(s))
		if err != nil {
			return false
		}
		v.SetInt(int64(dur))
		return true
	case kindTime:
		s, ok := d.rawStr()
		if !ok {
			return false
		}
		t, err := time.Parse(time.RFC3339, string(s))
		if err != nil {
			return false
		}
		v.Set(reflect.ValueOf(t))
		return true
	case kindPointer:
		ptr := reflect.New(p.elem.typ)
		if !d.value(p.elem, ptr.Elem(), depth+1) {
			return false
		}
		v.Set(ptr)
		return true
	case kindSlice:
		return d.slice(p, v, depth)
	case kindStruct:
		return d.object(p, v, depth, false)
	}
	return false
}

func (d *jsonDecoder) slice(p *typePlan, v reflect.Value, depth int) bool {
	if !d.consume('[') {
		return false
	}
	// Elements are decoded into a scratch slice reused for every list of the type, and copied out at
	// their exact length: growing each list by doubling allocated four times what the set keeps.
	s := d.scratch[p] // addressable, so that SetLen does not allocate as Slice does
	if !s.IsValid() {
		s = reflect.New(p.typ).Elem()
		s.Set(reflect.MakeSlice(p.typ, 0, 16))
	}
	d.scratch[p] = reflect.Value{} // taken, should a list of the type hold another
	n := 0
	if !d.consume(']') {
		for {
			if n == s.Cap() {
				s.Grow(n)
			}
			s.SetLen(n + 1)
			e := s.Index(n)
			e.SetZero()
			if !d.value(p.elem, e, depth+1) {
				return false
			}
			n++
			if d.consume(',') {
				continue
			}
			if d.consume(']') {
				break
			}
			return false
		}
	}
	exact := reflect.MakeSlice(p.typ, n, n)
	reflect.Copy(exact, s)
	v.Set(exact)
	d.scratch[p] = s
	return true
}

// object decodes a JSON object into the struct v. At the top (top), keys starting with "x-" are
// skipped, as the checker skips them.
func (d *jsonDecoder) object(p *typePlan, v reflect.Value, depth int, top bool) bool {
	if p.kind != kindStruct || !d.consume('{') {
		return false
	}
	if d.consume('}') {
		return true
	}
	var seen uint64
	var scratch map[string]bool // top-level "x-" keys: yaml.v3 refuses them twice too
	next := 0
	for {
		if d.peek() != '"' {
			return false
		}
		key, ok := d.rawKey()
		if !ok || !d.consume(':') {
			return false
		}
		i, known := p.field(key, next)
		f := &p.fields[i]
		switch {
		case known && seen&f.bit == 0:
			seen |= f.bit
			next = i + 1
			if !d.value(f.plan, v.Field(f.index), depth+1) {
				return false
			}
		case !known && top && len(key) >= 2 && key[0] == 'x' && key[1] == '-':
			if scratch == nil {
				scratch = map[string]bool{}
			}
			if scratch[string(key)] {
				return false
			}
			scratch[string(key)] = true
			if !d.skip(depth + 1) {
				return false
			}
		default:
			return false // unknown or given twice
		}
		if d.consume(',') {
			continue
		}
		return d.consume('}')
	}
}

// skip passes over any JSON value, checking its syntax.
func (d *jsonDecoder) skip(depth int) bool {
	if depth > maxDepth {
		return false
	}
	switch c := d.peek(); {
	case c == '"':
		_, ok := d.rawStr()
		return ok
	case c == '{' || c == '[':
		d.pos++
		end := byte('}')
		if c == '[' {
			end = ']'
		}
		if d.consume(end) {
			return true
		}
		for {
			if c == '{' {
				if d.peek() != '"' {
					return false
				}
				if _, ok := d.rawStr(); !ok || !d.consume(':') {
					return false
				}
			}
			if !d.skip(depth + 1) {
				return false
			}
			if d.consume(',') {
				continue
			}
			return d.consume(end)
		}
	case c == 't':
		return d.literal("true")
	case c == 'f':
		return d.literal("false")
	case c == 'n':
		return d.literal("null")
	default:
		_, ok := d.number()
		return ok
	}
}

// number scans a JSON number and returns its text.
func (d *jsonDecoder) number() ([]byte, bool) {
	b, i := d.data, d.pos
	start := i
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
		return nil, false
	}
	if i < len(b) && b[i] == '.' {
		i++
		digits := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		if i == digits {
			return nil, false
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		digits := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		if i == digits {
			return nil, false
		}
	}
	d.pos = i
	return b[start:i], true
}

// rawKey returns a key's bytes; an escaped key is left to the checked path.
func (d *jsonDecoder) rawKey() ([]byte, bool) {
	b := d.data
	i := d.pos + 1
	for i < len(b) {
		switch c := b[i]; {
		case c == '"':
			key := b[d.pos+1 : i]
			d.pos = i + 1
			return key, true
		case c == '\\' || c < 0x20:
			return nil, false
		}
		i++
	}
	return nil, false
}

// str returns a JSON string's value, interned.
func (d *jsonDecoder) str() (string, bool) {
	b, ok := d.rawStr()
	if !ok {
		return "", false
	}
	if s, ok := d.strs[string(b)]; ok {
		return s, true
	}
	s := string(b)
	d.strs[s] = s
	return s, true
}

// rawStr returns a JSON string's value, unescaped; the slice is valid until the next call.
func (d *jsonDecoder) rawStr() ([]byte, bool) {
	b := d.data
	if d.pos >= len(b) || b[d.pos] != '"' {
		return nil, false
	}
	i := d.pos + 1
	start := i
	for i < len(b) {
		c := b[i]
		if c == '"' {
			d.pos = i + 1
			return b[start:i], true
		}
		if c == '\\' {
			break
		}
		if c < 0x20 {
			return nil, false
		}
		i++
	}
	// Escapes: unescape into the scratch buffer.
	out := append(d.buf[:0], b[start:i]...)
	for i < len(b) {
		c := b[i]
		switch {
		case c == '"':
			d.pos = i + 1
			d.buf = out
			return out, true
		case c < 0x20:
			return nil, false
		case c != '\\':
			out = append(out, c)
			i++
			continue
		}
		if i+1 >= len(b) {
			return nil, false
		}
		switch b[i+1] {
		case '"', '\\', '/':
			out = append(out, b[i+1])
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			if i+6 > len(b) {
				return nil, false
			}
			r, ok := hex4(b[i+2 : i+6])
			if !ok || utf8.RuneLen(r) < 0 { // surrogates: pairs and lone halves are the checked path's
				return nil, false
			}
			out = utf8.AppendRune(out, r)
			i += 6
			continue
		default:
			return nil, false
		}
		i += 2
	}
	return nil, false
}

func hex4(b []byte) (rune, bool) {
	var r rune
	for _, c := range b {
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

// parseInt reads the text of a JSON number as a whole number; fractions and exponents are refused, as
// the checker refuses them.
func parseInt(b []byte) (int64, bool) {
	neg := len(b) > 0 && b[0] == '-'
	if neg {
		b = b[1:]
	}
	if len(b) == 0 || len(b) > 18 { // 18 digits cannot overflow; longer numbers are the checked path's
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	if neg {
		n = -n
	}
	return n, true
}

// microsOf converts an amount as ParseMicros does, without allocating for the common forms ("2",
// "2.5", "0.000001"); anything else goes through ParseMicros.
func microsOf(b []byte) (Micros, bool) {
	i, whole := 0, int64(0)
	for i < len(b) && i < 12 && b[i] >= '0' && b[i] <= '9' {
		whole = whole*10 + int64(b[i]-'0')
		i++
	}
	frac, digits := int64(0), 0
	if i > 0 && i < len(b) && b[i] == '.' {
		i++
		for i < len(b) && digits < microsDecimals && b[i] >= '0' && b[i] <= '9' {
			frac = frac*10 + int64(b[i]-'0')
			digits++
			i++
		}
	}
	if i == 0 || i != len(b) || b[i-1] == '.' {
		m, err := ParseMicros(string(b))
		return m, err == nil
	}
	for ; digits < microsDecimals; digits++ {
		frac *= 10
	}
	return Micros(whole*int64(MicrosPerUnit) + frac), true
}
