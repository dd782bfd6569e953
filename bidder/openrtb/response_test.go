package openrtb

import (
	"encoding/json"
	"testing"
)

func TestAppendMicros(t *testing.T) {
	for micros, want := range map[int64]string{
		0: "0", 1: "0.000001", 2_500_000: "2.5", 1_234_567: "1.234567", 30_000: "0.03",
		1_000_000: "1", -1_500_000: "-1.5", 290_000: "0.29", 12_000_000_010: "12000.00001",
	} {
		if got := string(AppendMicros(nil, micros)); got != want {
			t.Errorf("AppendMicros(%d) = %s, want %s", micros, got, want)
		}
	}
}

func TestAppendStringRoundTrips(t *testing.T) {
	for _, s := range []string{"", "plain", `quote " back \ slash`, "<script>&</script>", "tab\tnew\nline\r",
		"\x00\x1f", "ünïcödé ✓", "bad \xff utf8", "line\u2028sep\u2029", `{{CLICK_URL}}`} {
		b := AppendString(nil, s)
		var got string
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatalf("AppendString(%q) = %s: not JSON: %v", s, b, err)
		}
		want := s
		if s == "bad \xff utf8" {
			want = "bad \ufffd utf8"
		}
		if got != want {
			t.Errorf("round trip of %q gave %q", s, got)
		}
	}
}

func TestResponseJSON(t *testing.T) {
	r := BidResponse{ID: "req", Cur: "USD", SeatBid: []SeatBid{{Seat: "rtb", Bid: []Bid{{
		ID: "b1", ImpID: "1", Price: 2_500_000, NURL: "http://x/win?p=${AUCTION_PRICE}", AdM: `<a href="x">`,
		ADomain: []string{"ford.com"}, CrID: "cr", Cat: []string{"IAB2"}, Attr: []int{1, 2}, DealID: "d", W: 300, H: 250, MType: MTypeBanner,
	}}}}}
	var got map[string]any
	if err := json.Unmarshal(r.AppendJSON(nil), &got); err != nil {
		t.Fatal(err)
	}
	bid := got["seatbid"].([]any)[0].(map[string]any)["bid"].([]any)[0].(map[string]any)
	if bid["price"].(float64) != 2.5 || bid["adm"] != `<a href="x">` || bid["nurl"] != "http://x/win?p=${AUCTION_PRICE}" ||
		bid["w"].(float64) != 300 || bid["mtype"].(float64) != 1 || bid["dealid"] != "d" {
		t.Errorf("bid = %v", bid)
	}
	if got["id"] != "req" || got["cur"] != "USD" {
		t.Errorf("response = %v", got)
	}
}

func TestResponseEncodingAllocates0(t *testing.T) {
	r := BidResponse{ID: "req", Cur: "USD", SeatBid: []SeatBid{{Seat: "rtb", Bid: []Bid{{ID: "b1", ImpID: "1", Price: 2_500_000, AdM: `<a href="x">`, ADomain: []string{"ford.com"}}}}}}
	buf := r.AppendJSON(nil)
	if n := testing.AllocsPerRun(100, func() { buf = r.AppendJSON(buf[:0]) }); n != 0 {
		t.Errorf("AppendJSON allocates %.0f times per response", n)
	}
}
