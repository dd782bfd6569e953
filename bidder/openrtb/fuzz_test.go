package openrtb

import (
	"encoding/json"
	"testing"
)

// FuzzDecode feeds arbitrary bytes to the decoder and validator, as an exchange (or an attacker) may:
// it must never panic, must refuse with a known reason or accept a request that satisfies the
// invariants the bid path relies on, and the response encoder must produce valid JSON for whatever
// strings the request carried.
func FuzzDecode(f *testing.F) {
	for _, b := range sampleRequests(f) {
		f.Add(b)
	}
	f.Add([]byte(minimal))
	f.Add([]byte(`{"id":"r","imp":[{"id":"1","native":{"request":"{\"assets\":[{\"id\":1,\"title\":{\"len\":5}}]}"}}]}`))
	f.Add([]byte(`{"id":"\u2028<x>","imp":[{"id":"1","video":{"mimes":["video/mp4"]},"pmp":{"deals":[{"id":"d","bidfloor":1e308}]}}]}`))
	known := map[Reason]bool{}
	for _, r := range Reasons {
		known[r] = true
	}
	var r BidRequest
	f.Fuzz(func(t *testing.T, body []byte) {
		err := Decode(body, &r)
		if err != nil {
			e := AsError(err)
			if e == nil || !known[e.Reason] {
				t.Fatalf("unclassified error %v", err)
			}
			return
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
				var n NativeRequest
				_ = ParseNativeRequest(imp.Native.Request, &n)
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
	})
}
