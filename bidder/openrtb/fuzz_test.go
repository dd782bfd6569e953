package openrtb

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"unicode/utf8"

	"github.com/bytedance/sonic/decoder"

	"rtb/loadtest"
)

// FuzzDecode feeds arbitrary bytes to the decoder and validator, as an exchange (or an attacker) may:
// it must never panic, must refuse with a known reason or accept a request that satisfies the
// invariants the bid path relies on, and the response encoder must produce valid JSON for whatever
// strings the request carried. What it accepts must be JSON (encoding/json agrees), and decode to
// what sonic, the decoder it replaced, made of it whenever sonic accepts it too.
func FuzzDecode(f *testing.F) {
	for _, b := range sampleRequests(f) {
		f.Add(b)
	}
	// The conformance corpus: exchange captures and hostile cases, each a known answer.
	corpus, err := filepath.Glob("testdata/conformance/*")
	if err != nil || len(corpus) < 50 {
		f.Fatalf("conformance corpus: %d files (%v)", len(corpus), err)
	}
	for _, name := range corpus {
		if filepath.Ext(name) == ".md" {
			continue
		}
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(minimal))
	f.Add([]byte(`{"id":"r","imp":[{"id":"1","native":{"request":"{\"assets\":[{\"id\":1,\"title\":{\"len\":5}}]}"}}]}`))
	f.Add([]byte(`{"id":"\u2028<x>","imp":[{"id":"1","video":{"mimes":["video/mp4"]},"pmp":{"deals":[{"id":"d","bidfloor":1e308}]}}]}`))
	f.Add([]byte(`{"id":"a\"\\\/\b\f\n\r\t\u00e9\ud83d\ude00\ud800","imp":[{"id":"1","banner":{"w":300.0,"h":2.5e2}}],"at":500,"tmax":1e30}`))
	f.Add([]byte(`{"\u0069d":"r","imp":[{"id":"1","banner":null,"audio":{"mimes":null}}],"site":{"publisher":{"ext":[[[{}]]]}},"regs":{"ext":{"gdpr":1}}}`))
	f.Add([]byte(`{"id":"r","imp":[{"id":"1","banner":{}},{"id":"1","banner":{}}],"site":{},"app":{}} `))
	known := map[Reason]bool{}
	for _, r := range Reasons {
		known[r] = true
	}
	var r, ref BidRequest
	var nr NativeRequest
	f.Fuzz(func(t *testing.T, body []byte) {
		err := Decode(body, &r)
		if err != nil {
			e := AsError(err)
			if e == nil || !known[e.Reason] {
				t.Fatalf("unclassified error %v", err)
			}
			if e.Reason == ReasonNotJSON && json.Valid(body) && utf8.Valid(body) && nesting(body) < MaxDepth && sonicDecode(body, &ref) == nil {
				t.Fatalf("refused as not JSON what is JSON and sonic decodes: %s", e.Msg)
			}
			return
		}
		if !json.Valid(body) {
			t.Fatalf("accepted what is not JSON")
		}
		if r.ID == "" || len(r.Imp) == 0 || len(r.Imp) > MaxImps {
			t.Fatalf("accepted an invalid request: id=%q imps=%d", r.ID, len(r.Imp))
		}
		for i := range r.Imp {
			imp := &r.Imp[i]
			if imp.ID == "" || imp.BidFloor < 0 || (imp.Banner == nil && imp.Video == nil && imp.Audio == nil && imp.Native == nil) {
				t.Fatalf("accepted an invalid imp %+v", imp)
			}
			if imp.Native != nil {
				_ = ParseNativeRequest(imp.Native.Request, &nr)
			}
		}
		r.GDPRApplies()
		resp := BidResponse{ID: r.ID, Cur: "USD", SeatBid: []SeatBid{{Seat: r.Imp[0].TagID, Bid: []Bid{{
			ID: r.ID, ImpID: r.Imp[0].ID, Price: 1, AdM: r.Device.UA, ADomain: r.BAdv, Cat: r.BCat,
		}}}}}
		out := resp.AppendJSON(nil)
		if !json.Valid(out) {
			t.Fatalf("response is not valid JSON: %s", out)
		}
		if sonicDecode(body, &ref) == nil && !duplicateKeys(body) {
			if d := diff(reflect.ValueOf(r), reflect.ValueOf(ref), "r"); d != "" {
				t.Fatalf("decodes differently from sonic: %s", d)
			}
		}
	})
}

// sonicDecode is the decoder this package used before its own, as it was configured.
func sonicDecode(body []byte, r *BidRequest) error {
	*r = BidRequest{Regs: Regs{GDPR: -1}}
	d := decoder.NewDecoder(string(body))
	d.SetOptions(decoder.OptionCaseSensitive)
	if err := d.Decode(r); err != nil {
		return err
	}
	return d.CheckTrailings()
}

// nesting is an upper bound of the nesting depth of JSON text.
func nesting(b []byte) int { return bytes.Count(b, []byte("{")) + bytes.Count(b, []byte("[")) }

// duplicateKeys reports whether some object of b repeats a key: what decoders make of that differs
// (sonic merges a repeated array of objects into the elements decoded before), and so is not compared.
func duplicateKeys(b []byte) bool {
	dec := json.NewDecoder(bytes.NewReader(b))
	type frame struct {
		obj  bool
		keys map[string]bool
		key  bool // the next string token of an object is a key
	}
	var stack []*frame
	for {
		tok, err := dec.Token()
		if err != nil {
			return false
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		isKey := top != nil && top.obj && top.key
		switch v := tok.(type) {
		case json.Delim:
			switch v {
			case '{':
				stack = append(stack, &frame{obj: true, keys: map[string]bool{}, key: true})
			case '[':
				stack = append(stack, &frame{})
			default:
				stack = stack[:len(stack)-1]
				if len(stack) > 0 && stack[len(stack)-1].obj {
					stack[len(stack)-1].key = true
				}
			}
			if (v == '{' || v == '[') && top != nil && top.obj {
				top.key = false
			}
			continue
		case string:
			if isKey {
				if top.keys[v] {
					return true
				}
				top.keys[v] = true
				top.key = false
				continue
			}
		}
		if top != nil && top.obj {
			top.key = true
		}
	}
}

// diff compares two decoded values field by field, taking nil and empty slices as equal and
// skipping unexported fields; it returns where they first differ, or "".
func diff(a, b reflect.Value, path string) string {
	switch a.Kind() {
	case reflect.Pointer:
		if a.IsNil() || b.IsNil() {
			if a.IsNil() != b.IsNil() {
				return fmt.Sprintf("%s: %v vs %v", path, a, b)
			}
			return ""
		}
		return diff(a.Elem(), b.Elem(), path)
	case reflect.Struct:
		for i := 0; i < a.NumField(); i++ {
			if !a.Type().Field(i).IsExported() {
				continue
			}
			if d := diff(a.Field(i), b.Field(i), path+"."+a.Type().Field(i).Name); d != "" {
				return d
			}
		}
		return ""
	case reflect.Slice:
		if a.Len() != b.Len() {
			return fmt.Sprintf("%s: len %d vs %d", path, a.Len(), b.Len())
		}
		for i := 0; i < a.Len(); i++ {
			if d := diff(a.Index(i), b.Index(i), fmt.Sprintf("%s[%d]", path, i)); d != "" {
				return d
			}
		}
		return ""
	default:
		if !a.Equal(b) {
			return fmt.Sprintf("%s: %#v vs %#v", path, a.Interface(), b.Interface())
		}
		return ""
	}
}

// TestDecodeMatchesSonic checks the decoder against sonic over the load generator's request mix.
func TestDecodeMatchesSonic(t *testing.T) {
	bodies, err := loadtest.Bodies(1, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var r, ref BidRequest
	for i, b := range bodies {
		if err := Decode(b.JSON, &r); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		if err := sonicDecode(b.JSON, &ref); err != nil {
			t.Fatalf("request %d: sonic: %v", i, err)
		}
		if d := diff(reflect.ValueOf(r), reflect.ValueOf(ref), "r"); d != "" {
			t.Fatalf("request %d decodes differently from sonic: %s", i, d)
		}
	}
}
