package openrtb

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"unsafe"
)

// The decoder walks a plan of each model type, built once from the struct tags by reflection, and
// writes fields through their offsets. A plan per type rather than code per field keeps every field
// of the model decoded (a field added to a struct is decoded without touching the decoder) while the
// walk itself makes no reflective call on the common path.

type kind uint8

const (
	kString kind = iota
	kInt8
	kInt
	kInt64
	kFloat64
	kPtrInt8
	kPtrInt64
	kRaw
	kStrings
	kInts
	kInt64s
	kStruct
	kPtrStruct
	kStructs
	kID       // a string that exchanges also send as a number (ids): the number's text is kept
	kKeywords // a string that exchanges also send as an array of strings (Smaato): joined with ","
	kIntList  // an int that exchanges also send as an array (Fyber's video.protocol): see field.list
)

type field struct {
	w    uint64 // keyWord(name)
	name string
	off  uintptr
	kind kind
	idx  uint8 // the field's index in its plan, for the set of keys an object has seen
	sub  *plan // the element or pointee type of struct kinds
	list int   // kIntList: from this field to the []int an array of it is appended to
}

// maxFields is the most fields a model type may have: objects track the keys they have seen in a
// two-word bit set (Video, the largest, has 38).
const maxFields = 128

// intLists are the integer fields exchanges also send as an array, and the list field of the same
// struct such an array belongs in: Video.protocol is the 2.2 single protocol, which Fyber sends as
// "protocol":[3].
var intLists = map[string]string{"Video.Protocol": "Protocols"}

type plan struct {
	typ    reflect.Type
	slice  reflect.Type // []typ, to grow slices of it
	size   uintptr
	fields []field
	table  []int16   // open addressing by hash: field index + 1, 0 for empty
	keep   []uintptr // offsets of the slices, here or in value fields, whose arrays survive a reset
	zero   func(unsafe.Pointer)
	pool   int // index of this type's pool in an arena, or -1 if nothing points to it
}

// keyWord is the first eight bytes of key, little-endian, zero-padded: most OpenRTB names fit in it,
// so one comparison of words (and of lengths) tells them apart.
func keyWord(key []byte) uint64 {
	if len(key) >= 8 {
		return binary.LittleEndian.Uint64(key)
	}
	var w uint64
	for i := len(key) - 1; i >= 0; i-- {
		w = w<<8 | uint64(key[i])
	}
	return w
}

func (p *plan) hash(w uint64, n int) uint {
	return uint((w^uint64(n))*0x9E3779B97F4A7C15>>32) & uint(len(p.table)-1)
}

// lookup finds the field named key, whose keyWord is w.
func (p *plan) lookup(key []byte, w uint64) *field {
	mask := uint(len(p.table) - 1)
	for h := p.hash(w, len(key)); ; h = (h + 1) & mask {
		i := p.table[h]
		if i == 0 {
			return nil
		}
		if f := &p.fields[i-1]; f.w == w && len(f.name) == len(key) && (len(key) <= 8 || f.name[8:] == string(key[8:])) {
			return f
		}
	}
}

func (p *plan) index() {
	n := 8
	for n < 4*len(p.fields) {
		n *= 2
	}
	p.table = make([]int16, n)
	for i := range p.fields {
		f := &p.fields[i]
		f.w = keyWord([]byte(f.name))
		h := p.hash(f.w, len(f.name))
		for p.table[h] != 0 {
			h = (h + 1) & uint(n-1)
		}
		p.table[h] = int16(i + 1)
	}
}

// sliceHeader is the layout of every Go slice; writing its data pointer through this type keeps the
// garbage collector's write barrier.
type sliceHeader struct {
	data     unsafe.Pointer
	len, cap int
}

// maxKeep bounds the capacity a reset keeps: one pathological request must not pin megabytes in a
// pooled request for good.
const maxKeep = 256

// maxSlices is the most slices a model type holds (Video, with 11), for reset's stack array.
const maxSlices = 16

// reset zeroes the struct at ptr but keeps the backing arrays of its slices for the next decode.
func (p *plan) reset(ptr unsafe.Pointer) {
	if len(p.keep) == 0 {
		p.zero(ptr)
		return
	}
	var saved [maxSlices]sliceHeader
	for i, off := range p.keep {
		if h := (*sliceHeader)(unsafe.Add(ptr, off)); h.cap > 0 && h.cap <= maxKeep {
			saved[i] = sliceHeader{data: h.data, cap: h.cap}
		}
	}
	p.zero(ptr)
	for i, off := range p.keep {
		if saved[i].data != nil {
			*(*sliceHeader)(unsafe.Add(ptr, off)) = saved[i]
		}
	}
}

var (
	plans     = map[reflect.Type]*plan{}
	poolPlans []*plan

	requestPlan = planOf(reflect.TypeFor[BidRequest]())
	impPlan     = planOf(reflect.TypeFor[Imp]())
	nativePlan  = planOf(reflect.TypeFor[NativeRequest]())
)

var rawType = reflect.TypeFor[json.RawMessage]()

// zeroers clear the model's types by typed assignment, a few times faster than reflect's SetZero,
// which remains the fallback for a type missing here (TestPlansComplete lists them).
var zeroers = func() map[reflect.Type]func(unsafe.Pointer) {
	m := map[reflect.Type]func(unsafe.Pointer){}
	add := func(t reflect.Type, f func(unsafe.Pointer)) { m[t] = f }
	add(zeroer[BidRequest]())
	add(zeroer[Imp]())
	add(zeroer[Metric]())
	add(zeroer[Format]())
	add(zeroer[Banner]())
	add(zeroer[Video]())
	add(zeroer[DurFloor]())
	add(zeroer[Audio]())
	add(zeroer[Native]())
	add(zeroer[PMP]())
	add(zeroer[Deal]())
	add(zeroer[Site]())
	add(zeroer[App]())
	add(zeroer[DOOH]())
	add(zeroer[Publisher]())
	add(zeroer[Content]())
	add(zeroer[Device]())
	add(zeroer[Geo]())
	add(zeroer[User]())
	add(zeroer[Data]())
	add(zeroer[Segment]())
	add(zeroer[EID]())
	add(zeroer[UID]())
	add(zeroer[Source]())
	add(zeroer[SupplyChain]())
	add(zeroer[SupplyChainNode]())
	add(zeroer[Regs]())
	add(zeroer[NativeRequest]())
	add(zeroer[NativeAsset]())
	add(zeroer[NativeTitle]())
	add(zeroer[NativeImage]())
	add(zeroer[NativeData]())
	add(zeroer[struct{}]())
	return m
}()

func zeroer[T any]() (reflect.Type, func(unsafe.Pointer)) {
	return reflect.TypeFor[T](), func(p unsafe.Pointer) { *(*T)(p) = *new(T) }
}

// planOf builds the plan of struct type t; it panics on a field type the decoder does not know, which
// the package's tests (and its init) catch before anything runs.
func planOf(t reflect.Type) *plan {
	if p := plans[t]; p != nil {
		return p
	}
	p := &plan{typ: t, slice: reflect.SliceOf(t), size: t.Size(), pool: -1}
	plans[t] = p
	for i := 0; i < t.NumField(); i++ {
		sf := t.Field(i)
		if !sf.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(sf.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = sf.Name
		}
		f := field{name: name, off: sf.Offset, idx: uint8(len(p.fields))}
		ft := sf.Type
		switch {
		case ft.Kind() == reflect.String && (name == "id" || strings.HasSuffix(name, "id")):
			f.kind = kID
		case ft.Kind() == reflect.String && name == "keywords":
			f.kind = kKeywords
		case ft.Kind() == reflect.String:
			f.kind = kString
		case ft.Kind() == reflect.Int && intLists[t.Name()+"."+sf.Name] != "":
			lf, ok := t.FieldByName(intLists[t.Name()+"."+sf.Name])
			if !ok || lf.Type != reflect.TypeFor[[]int]() {
				panic(fmt.Sprintf("openrtb: %s.%s: no []int field %s for its arrays", t.Name(), sf.Name, intLists[t.Name()+"."+sf.Name]))
			}
			f.kind, f.list = kIntList, int(lf.Offset)-int(sf.Offset)
		case ft.Kind() == reflect.Int8:
			f.kind = kInt8
		case ft.Kind() == reflect.Int:
			f.kind = kInt
		case ft.Kind() == reflect.Int64:
			f.kind = kInt64
		case ft.Kind() == reflect.Float64:
			f.kind = kFloat64
		case ft == rawType:
			f.kind = kRaw
		case ft.Kind() == reflect.Pointer && ft.Elem().Kind() == reflect.Int8:
			f.kind = kPtrInt8
		case ft.Kind() == reflect.Pointer && ft.Elem().Kind() == reflect.Int64:
			f.kind = kPtrInt64
		case ft.Kind() == reflect.Pointer && ft.Elem().Kind() == reflect.Struct:
			f.kind, f.sub = kPtrStruct, planOf(ft.Elem())
			if f.sub.pool < 0 {
				f.sub.pool = len(poolPlans)
				poolPlans = append(poolPlans, f.sub)
			}
		case ft.Kind() == reflect.Struct:
			f.kind, f.sub = kStruct, planOf(ft)
			for _, off := range f.sub.keep {
				p.keep = append(p.keep, sf.Offset+off)
			}
		case ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.String:
			f.kind = kStrings
		case ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Int:
			f.kind = kInts
		case ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Int64:
			f.kind = kInt64s
		case ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct:
			f.kind, f.sub = kStructs, planOf(ft.Elem())
		default:
			panic(fmt.Sprintf("openrtb: %s.%s: the decoder has no plan for %s", t.Name(), sf.Name, ft))
		}
		if ft.Kind() == reflect.Slice && ft != rawType {
			p.keep = append(p.keep, sf.Offset)
		}
		p.fields = append(p.fields, f)
	}
	if len(p.fields) > maxFields {
		panic(fmt.Sprintf("openrtb: %s has more fields than an object's set of seen keys holds", t.Name()))
	}
	p.index()
	if p.zero = zeroers[t]; p.zero == nil {
		p.zero = func(ptr unsafe.Pointer) { reflect.NewAt(t, ptr).Elem().SetZero() }
	}
	if len(p.keep) > maxSlices {
		panic(fmt.Sprintf("openrtb: %s has more slices than plan.reset saves", t.Name()))
	}
	return p
}

// arena holds what decoding into one BidRequest hands out and takes back at the next decode: the
// objects its pointers point to, its pointer-to-integer fields, and the unescaped bytes of strings
// that carried escapes. Whatever a decode hands out stays valid until the next decode into the same
// request, as the strings aliasing the body do.
type arena struct {
	pools [][]unsafe.Pointer // per pooled plan: the objects handed out so far, reused in order
	used  []int
	buf   []byte
	i8    []int8
	i64   []int64
	imps  int // the imps the last request carried, beyond those kept (see scanner.structs)
}

func newArena() *arena {
	return &arena{pools: make([][]unsafe.Pointer, len(poolPlans)), used: make([]int, len(poolPlans))}
}

func (a *arena) reset() {
	for i := range a.used {
		a.used[i] = 0
		if len(a.pools[i]) > maxKeep {
			clear(a.pools[i][maxKeep:])
			a.pools[i] = a.pools[i][:maxKeep]
		}
	}
	if cap(a.buf) > 64<<10 {
		a.buf = nil
	}
	if cap(a.i8) > maxKeep {
		a.i8 = nil
	}
	if cap(a.i64) > maxKeep {
		a.i64 = nil
	}
	a.buf, a.i8, a.i64, a.imps = a.buf[:0], a.i8[:0], a.i64[:0], 0
}

// get returns a zeroed object of p's type (which must have a pool), reusing one of an earlier decode.
func (a *arena) get(p *plan) unsafe.Pointer {
	i := p.pool
	if n := a.used[i]; n < len(a.pools[i]) {
		a.used[i]++
		ptr := a.pools[i][n]
		p.reset(ptr)
		return ptr
	}
	ptr := reflect.New(p.typ).UnsafePointer()
	a.pools[i] = append(a.pools[i], ptr)
	a.used[i]++
	return ptr
}

// Pointers into i8 and i64 stay valid when an append moves them: the old array lives on, unchanged,
// for as long as a pointer into it does.
func (a *arena) int8(v int8) *int8 {
	a.i8 = append(a.i8, v)
	return &a.i8[len(a.i8)-1]
}

func (a *arena) int64(v int64) *int64 {
	a.i64 = append(a.i64, v)
	return &a.i64[len(a.i64)-1]
}
