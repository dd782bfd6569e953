package events

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// awkward strings: JSON escapes, control characters, multi-byte UTF-8, the separators JavaScript
// treats as line ends.
var awkward = []string{
	"",
	"plain",
	`quote " backslash \ slash /`,
	"control \x00 \x01 \x1f \t \n \r \x7f",
	"unicode é ✓ 日本語 🦄",
	"separators \u2028 \u2029",
	"html <script>&amp;</script>",
	strings.Repeat("long ", 200),
}

func TestEventRoundTrip(t *testing.T) {
	for _, typ := range []Type{Bid, Win, Bill, Imp, Click, Loss} {
		for i, s := range awkward {
			e := Event{V: Version, Type: typ, ID: "id-" + s, TS: testTS.Add(time.Duration(i) * time.Hour),
				RequestID: s, ImpID: s, CampaignID: "c" + s, CreativeID: s, DealID: s, Exchange: s,
				PriceMicros: int64(i) * 1_000_003, BidMicros: int64(i) * 2_000_001, MinToWinMicros: int64(i) * 7, Reason: i}
			line := e.AppendJSON(nil)
			if !json.Valid(line) {
				t.Fatalf("%s %q: AppendJSON wrote invalid JSON %s", typ, s, line)
			}
			if bytes.ContainsAny(line, "\n\r") {
				t.Errorf("%s %q: the line contains a raw line break", typ, s)
			}
			got, err := Decode(line)
			if err != nil {
				t.Fatalf("%s %q: Decode(%s): %v", typ, s, line, err)
			}
			if !sameEvent(got, e) {
				t.Errorf("%s %q:\n got %+v\nwant %+v", typ, s, got, e)
			}
			// A decoder no one here wrote reads the same thing.
			var std Event
			if err := json.Unmarshal(line, &std); err != nil || !sameEvent(std, e) {
				t.Errorf("%s %q: encoding/json reads %+v (%v)", typ, s, std, err)
			}
		}
	}
}

// Decode normalizes what it reads: time to UTC at the millisecond the line carries, surrounding
// whitespace ignored.
func TestEventDecodeNormalizes(t *testing.T) {
	line := " \n" + `{"v":1,"type":"click","id":"a","ts":"2026-11-22T11:00:00.123+01:00","request_id":"","imp_id":"","campaign_id":"c","exchange":"","price_micros":0,"bid_micros":0,"reason":0}` + "\n"
	e, err := Decode([]byte(line))
	if err != nil {
		t.Fatal(err)
	}
	if !e.TS.Equal(testTS) {
		t.Errorf("ts %v, want %v", e.TS, testTS)
	}
	if got := string(e.AppendJSON(nil)); !strings.Contains(got, `"ts":"2026-11-22T10:00:00.123Z"`) {
		t.Errorf("re-encoded %s", got)
	}
	// Invalid UTF-8 is written as U+FFFD, never passed through.
	bad := Event{V: 1, Type: Win, ID: "id\xff", TS: testTS, CampaignID: "c"}
	line2 := bad.AppendJSON(nil)
	if !utf8.Valid(line2) {
		t.Fatalf("AppendJSON wrote invalid UTF-8: %q", line2)
	}
	if e, err := Decode(line2); err != nil || e.ID != "id\uFFFD" {
		t.Errorf("decoded %q, %v", e.ID, err)
	}
}

// The line on the wire is DESIGN.md's envelope, field for field and in that order.
func TestEventGoldenLine(t *testing.T) {
	e := Event{V: 1, Type: Win, ID: "<unique event id>", TS: testTS,
		RequestID: "<OpenRTB request id: the correlation id>", ImpID: "1", CampaignID: "c-42",
		Exchange: "x", PriceMicros: 1234000, BidMicros: 1500000}
	const golden = `{"v":1,"type":"win","id":"<unique event id>","ts":"2026-11-22T10:00:00.123Z",` +
		`"request_id":"<OpenRTB request id: the correlation id>","imp_id":"1","campaign_id":"c-42",` +
		`"exchange":"x","price_micros":1234000,"bid_micros":1500000,"reason":0}`
	if got := string(e.AppendJSON(nil)); got != golden {
		t.Errorf("got  %s\nwant %s", got, golden)
	}
	// The optional fields, where they go when set.
	l := Event{V: 1, Type: Loss, ID: "l", TS: testTS, RequestID: "r", ImpID: "2", CampaignID: "c-1",
		CreativeID: "cr", DealID: "d", Exchange: "x", BidMicros: 900, MinToWinMicros: 1000, Reason: 102}
	const goldenLoss = `{"v":1,"type":"loss","id":"l","ts":"2026-11-22T10:00:00.123Z","request_id":"r",` +
		`"imp_id":"2","campaign_id":"c-1","creative_id":"cr","deal_id":"d","exchange":"x",` +
		`"price_micros":0,"bid_micros":900,"min_to_win_micros":1000,"reason":102}`
	if got := string(l.AppendJSON(nil)); got != goldenLoss {
		t.Errorf("got  %s\nwant %s", got, goldenLoss)
	}
}

// AppendJSON does not allocate when the buffer is large enough (the request path reuses buffers).
func TestEventAppendJSONAllocs(t *testing.T) {
	e := win("alloc", "c-1")
	buf := make([]byte, 0, 512)
	if n := testing.AllocsPerRun(100, func() { buf = e.AppendJSON(buf[:0]) }); n != 0 {
		t.Errorf("AppendJSON: %v allocations, want 0", n)
	}
}

// PeekType reads the type of every event AppendJSON writes, and of nothing written otherwise, so
// that a reader passing over unwanted types by it never passes over what it wants.
func TestPeekType(t *testing.T) {
	for _, typ := range []Type{Bid, Win, Bill, Imp, Click, Loss, Traffic} {
		e := win("p", "c-1")
		e.Type = typ
		if typ == Traffic {
			e.Counts = Counts{{CampaignID: "c-1", N: 2}}
		}
		line := e.AppendJSON(nil)
		if got, ok := PeekType(line); !ok || got != typ {
			t.Errorf("PeekType(%s) = %q, %v; want %q", line, got, ok, typ)
		}
		if n := testing.AllocsPerRun(100, func() { PeekType(line) }); n != 0 {
			t.Errorf("PeekType: %v allocations, want 0", n)
		}
	}
	for _, in := range []string{
		``, `{`, `{"v":1,"type":"bid"`, `{"v":1,"type":"bid"}`, `{"v":1,"type":"view","id":"x"}`,
		`{"v":2,"type":"bid","id":"x"}`, `{"type":"bid","v":1,"id":"x"}`, ` {"v":1,"type":"bid","id":"x"}`,
		`{"v":1,"type":"b\u0069d","id":"x"}`, `{"v":1,"type":"bidx","id":"x"}`,
	} {
		if got, ok := PeekType([]byte(in)); ok {
			t.Errorf("PeekType(%s) = %q: want no type read (Decode must judge it)", in, got)
		}
	}
}

func TestEventDecodeRefusals(t *testing.T) {
	valid := map[string]any{"v": 1, "type": "win", "id": "i", "ts": "2026-11-22T10:00:00.123Z",
		"request_id": "r", "imp_id": "1", "campaign_id": "c", "exchange": "x", "price_micros": 1, "bid_micros": 1, "reason": 0}
	with := func(k string, v any) string {
		m := map[string]any{}
		for k, v := range valid {
			m[k] = v
		}
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
		return string(mustJSON(m))
	}
	if _, err := Decode([]byte(with("", nil))); err != nil {
		t.Fatalf("the valid base event is refused: %v", err)
	}
	for _, c := range []struct{ name, in, want string }{
		{"unknown version", with("v", 2), "version"},
		{"version zero", with("v", 0), "version"},
		{"no version", with("v", nil), "version"},
		{"unknown field", with("extra", "x"), "extra"},
		{"broken json", `{"v":1,"type":"win"`, "decode event"},
		{"not an object", `[1,2]`, "decode event"},
		{"empty", ``, "decode event"},
		{"trailing garbage", with("", nil) + `x`, "decode event"},
		{"missing id", with("id", nil), "without id"},
		{"empty id", with("id", ""), "without id"},
		{"missing campaign", with("campaign_id", nil), "without campaign_id"},
		{"missing ts", with("ts", nil), "without ts"},
		{"bad ts", with("ts", "yesterday"), "decode event"},
		{"ts before 2000", with("ts", "1999-12-31T23:59:59.999Z"), "out of range"},
		{"ts past 9999 in UTC", with("ts", "9999-12-31T23:59:59-01:00"), "out of range"},
		{"negative price", with("price_micros", -1), "negative"},
		{"negative bid", with("bid_micros", -1), "negative"},
		{"unknown type", with("type", "view"), "unknown type"},
		{"no type", with("type", nil), "unknown type"},
		{"string amount", with("price_micros", "5"), "decode event"},
		{"fractional amount", with("price_micros", 1.5), "decode event"},
		{"well-formed but 2 MB", with("request_id", strings.Repeat("r", 2<<20)), "bytes"},
	} {
		e, err := Decode([]byte(c.in))
		if err == nil {
			t.Errorf("%s: Decode(%s) accepted %+v", c.name, c.in, e)
			continue
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %q does not mention %q", c.name, err, c.want)
		}
		if (c.want == "version") != errors.Is(err, ErrVersion) {
			t.Errorf("%s: errors.Is(err, ErrVersion) = %v", c.name, errors.Is(err, ErrVersion))
		}
		if !reflect.DeepEqual(e, Event{}) {
			t.Errorf("%s: refused event not zero: %+v", c.name, e)
		}
	}
}

// FuzzDecode: Decode never panics, and whatever it accepts re-encodes to a line it decodes to the
// same event. "The same" allows for what the wire format normalizes: the time to UTC milliseconds,
// invalid UTF-8 to U+FFFD. After one round trip the event is a fixed point.
func FuzzDecode(f *testing.F) {
	for _, typ := range []Type{Bid, Win, Bill, Imp, Click, Loss} {
		for _, s := range awkward[:6] {
			e := Event{V: 1, Type: typ, ID: "i" + s, TS: testTS, RequestID: s, ImpID: "1", CampaignID: "c",
				CreativeID: s, Exchange: "x", PriceMicros: 5, BidMicros: 6, MinToWinMicros: 7, Reason: 2}
			f.Add(e.AppendJSON(nil))
		}
	}
	f.Add([]byte(`{"v":1,"type":"win","id":"a","ts":"2026-11-22T11:00:00.123456789+01:00","campaign_id":"c"}`))
	f.Add([]byte(`{"v":1,"type":"win","id":"\ud800","ts":"0001-01-01T00:00:01Z","campaign_id":"\u0000"}`))
	f.Add([]byte(`{"v":1,"type":"bid","id":"a","ts":"9999-12-31T23:59:59.999-23:59","campaign_id":"c","reason":-1}`))
	f.Add([]byte(`{"v":1,"v":2}`))
	f.Add([]byte(`null`))
	f.Add([]byte(`{"v":1,"type":"traffic","id":"t","ts":"2026-11-22T10:00:00Z","campaign_id":"c","count":3,"counts":{"c":1,"d:":2}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		PeekType(data) // never panics, whatever data is
		e, err := Decode(data)
		if err != nil {
			if !reflect.DeepEqual(e, Event{}) {
				t.Fatalf("refused %q but returned %+v", data, e)
			}
			return
		}
		line := e.AppendJSON(nil)
		if typ, ok := PeekType(line); !ok || typ != e.Type {
			t.Fatalf("PeekType(%s) = %q, %v; want %q", line, typ, ok, e.Type)
		}
		e2, err := Decode(line)
		if err != nil {
			t.Fatalf("Decode accepted %q as %+v but refuses its re-encoding %s: %v", data, e, line, err)
		}
		if want := normalized(e); !sameEvent(e2, want) {
			t.Fatalf("round trip of %q:\n got %+v\nwant %+v", data, e2, want)
		}
		// The normalized event is a fixed point: its line decodes to it and re-encodes to itself.
		line2 := e2.AppendJSON(nil)
		e3, err := Decode(line2)
		if err != nil || !sameEvent(e3, e2) {
			t.Fatalf("not a fixed point: %s decodes to %+v (%v), want %+v", line2, e3, err, e2)
		}
		if line3 := e3.AppendJSON(nil); !bytes.Equal(line2, line3) {
			t.Fatalf("not a fixed point:\n%s\n%s", line2, line3)
		}
	})
}

// normalized is e as the wire format carries it.
func normalized(e Event) Event {
	e.TS = e.TS.UTC().Truncate(time.Millisecond)
	for _, s := range []*string{&e.ID, &e.RequestID, &e.ImpID, &e.CampaignID, &e.CreativeID, &e.DealID, &e.Exchange} {
		*s = validUTF8(*s)
	}
	e.Type = Type(validUTF8(string(e.Type)))
	return e
}

// validUTF8 replaces each byte of s that is not part of valid UTF-8 with U+FFFD.
func validUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	var b strings.Builder
	for _, r := range s { // ranging over a string yields U+FFFD for each invalid byte
		b.WriteRune(r)
	}
	return b.String()
}

// A traffic report carries the counts of many campaigns in one message: they survive the trip in
// order, kcat-style readers see a plain object, and what cannot be a report is refused.
func TestTrafficReportRoundTrip(t *testing.T) {
	e := Event{V: Version, Type: Traffic, ID: "b1-traffic-3-1", TS: testTS, CampaignID: "c-1", Exchange: "all", Count: 17,
		Counts: Counts{{"c\"3", 5}, {"c-1", 12}, {"c:2", 0}}}
	line := e.AppendJSON(nil)
	if !json.Valid(line) {
		t.Fatalf("invalid JSON %s", line)
	}
	if !bytes.Contains(line, []byte(`"counts":{"c\"3":5,"c-1":12,"c:2":0}`)) {
		t.Errorf("counts not written as an object: %s", line)
	}
	got, err := Decode(line)
	if err != nil {
		t.Fatalf("Decode(%s): %v", line, err)
	}
	if !sameEvent(got, e) {
		t.Errorf("got %+v\nwant %+v", got, e)
	}
	var m map[string]any
	if err := json.Unmarshal(line, &m); err != nil || len(m["counts"].(map[string]any)) != 3 {
		t.Errorf("encoding/json reads counts %v (%v)", m["counts"], err)
	}
	// Written in any order, read sorted.
	unsorted := bytes.Replace(line, []byte(`{"c\"3":5,"c-1":12,"c:2":0}`), []byte(`{"c-1":12,"c:2":0,"c\"3":5}`), 1)
	if got, err := Decode(unsorted); err != nil || !sameEvent(got, e) {
		t.Errorf("unsorted counts: %+v, %v", got, err)
	}
	for _, c := range []struct{ name, from, to, want string }{
		{"negative count", `"c-1":12`, `"c-1":-1`, "count"},
		{"empty campaign", `"c-1":12`, `"":12`, "count"},
		{"campaign twice", `"c:2":0`, `"c-1":0`, "twice"},
		{"fractional count", `"c-1":12`, `"c-1":1.5`, "counts"},
		{"not an object", `{"c\"3":5,"c-1":12,"c:2":0}`, `[1]`, "counts"},
		{"on a win", `"type":"traffic"`, `"type":"win"`, "counts on a win"},
	} {
		in := bytes.Replace(line, []byte(c.from), []byte(c.to), 1)
		if _, err := Decode(in); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: Decode(%s) = %v, want an error mentioning %q", c.name, in, err, c.want)
		}
	}
}
