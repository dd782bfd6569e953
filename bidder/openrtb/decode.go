package openrtb

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"unsafe"
)

// MaxImps bounds the work one request can ask for; no exchange sends more than a few dozen.
const MaxImps = 64

// Reason is a bounded label for why a request was refused; it doubles as a metric label value.
type Reason string

// The reasons a request is refused. Keep the set small and fixed: each is a metric label value.
const (
	ReasonNotJSON           Reason = "not_json"
	ReasonEmptyBody         Reason = "empty_body"
	ReasonMissingID         Reason = "missing_id"
	ReasonNoImp             Reason = "no_imp"
	ReasonTooManyImps       Reason = "too_many_imps"
	ReasonImpMissingID      Reason = "imp_missing_id"
	ReasonDuplicateImpID    Reason = "duplicate_imp_id"
	ReasonImpNoMedia        Reason = "imp_no_media"
	ReasonNegativeFloor     Reason = "negative_floor"
	ReasonMultipleInventory Reason = "multiple_inventory"
	ReasonDealMissingID     Reason = "deal_missing_id"
	ReasonDuplicateKey      Reason = "duplicate_key"
)

// Reasons lists every Reason, so that metrics can be pre-registered with all label values.
var Reasons = []Reason{ReasonNotJSON, ReasonEmptyBody, ReasonMissingID, ReasonNoImp, ReasonTooManyImps,
	ReasonImpMissingID, ReasonDuplicateImpID, ReasonImpNoMedia, ReasonNegativeFloor, ReasonMultipleInventory, ReasonDealMissingID, ReasonDuplicateKey}

// Error is a refusal of a request: Reason is the bounded label, Msg the one-line text for the exchange.
type Error struct {
	Reason Reason
	Msg    string
}

func (e *Error) Error() string { return e.Msg }

func refuse(r Reason, format string, args ...any) *Error {
	return &Error{Reason: r, Msg: fmt.Sprintf(format, args...)}
}

// Reset empties r for reuse, keeping the backing arrays of its slices, and what its last decode
// handed out, so that a pooled request decodes without allocating. Fields that default to "unknown"
// rather than zero are set here.
func (r *BidRequest) Reset() {
	mem := r.mem
	requestPlan.reset(unsafe.Pointer(r))
	if mem != nil {
		mem.reset()
	}
	r.mem = mem
	r.Regs.GDPR = -1
}

// Decoder decodes bid requests. It holds no state: what decoding reuses lives in the BidRequest, so
// that one request's objects never move to another whichever decoder callers share.
type Decoder struct{}

// Decode resets r, decodes body into it and validates it. The returned error is an *Error.
//
// Strings in r alias body, or memory r keeps for the next decode: they are valid while body is and
// until the next decode into r, and whatever outlives the request must copy them. So are the objects
// r's pointers point to, which r hands out again at its next decode.
func (d *Decoder) Decode(body []byte, r *BidRequest) error {
	r.Reset()
	if len(bytes.TrimSpace(body)) == 0 {
		return refuse(ReasonEmptyBody, "empty body: expected an OpenRTB bid request")
	}
	if r.mem == nil {
		r.mem = newArena()
	}
	s := scanner{b: body, a: r.mem}
	if err := s.document(requestPlan, unsafe.Pointer(r)); err != nil {
		var dup *duplicateKeyError
		if errors.As(err, &dup) {
			return refuse(ReasonDuplicateKey, "not a valid OpenRTB bid request: %s", oneLine(err.Error(), 160))
		}
		return refuse(ReasonNotJSON, "not a valid OpenRTB JSON bid request: %s", oneLine(err.Error(), 160))
	}
	return r.Validate()
}

// Decode is Decoder.Decode, kept for callers that do not hold a Decoder.
func Decode(body []byte, r *BidRequest) error {
	var d Decoder
	return d.Decode(body, r)
}

// Pretouch prepares decoding ahead of the first request. The decoder's plans are built when the
// package initialises, so it has nothing left to do; it stays for its callers.
func Pretouch() error { return nil }

// Validate checks what OpenRTB makes mandatory and what a bidder cannot act on without.
func (r *BidRequest) Validate() error {
	if r.ID == "" {
		return refuse(ReasonMissingID, "request id is missing")
	}
	if len(r.Imp) == 0 {
		return refuse(ReasonNoImp, "request %q has no imp", r.ID)
	}
	if n := max(len(r.Imp), r.imps()); n > MaxImps {
		return refuse(ReasonTooManyImps, "request %q has %d imps, at most %d are accepted", r.ID, n, MaxImps)
	}
	n := 0
	if r.Site != nil {
		n++
	}
	if r.App != nil {
		n++
	}
	if r.DOOH != nil {
		n++
	}
	if n > 1 {
		return refuse(ReasonMultipleInventory, "request %q has more than one of site, app and dooh", r.ID)
	}
	for i := range r.Imp {
		imp := &r.Imp[i]
		if imp.ID == "" {
			return refuse(ReasonImpMissingID, "imp[%d] has no id", i)
		}
		// Quadratic, but MaxImps bounds it and it needs no map.
		for j := 0; j < i; j++ {
			if r.Imp[j].ID == imp.ID {
				return refuse(ReasonDuplicateImpID, "imp id %q appears twice", imp.ID)
			}
		}
		if imp.Banner == nil && imp.Video == nil && imp.Audio == nil && imp.Native == nil {
			return refuse(ReasonImpNoMedia, "imp %q has none of banner, video, audio, native", imp.ID)
		}
		if imp.BidFloor < 0 || (imp.Video != nil && negativeDurFloor(imp.Video)) {
			return refuse(ReasonNegativeFloor, "imp %q has a negative bidfloor", imp.ID)
		}
		if imp.PMP != nil {
			for k := range imp.PMP.Deals {
				if imp.PMP.Deals[k].ID == "" {
					return refuse(ReasonDealMissingID, "imp %q has a deal without id", imp.ID)
				}
				if imp.PMP.Deals[k].BidFloor < 0 {
					return refuse(ReasonNegativeFloor, "imp %q deal %q has a negative bidfloor", imp.ID, imp.PMP.Deals[k].ID)
				}
			}
		}
	}
	return nil
}

func negativeDurFloor(v *Video) bool {
	for i := range v.DurFloors {
		if v.DurFloors[i].BidFloor < 0 {
			return true
		}
	}
	return false
}

// FirstPrice reports whether the auction is first price; OpenRTB's default (absent at) is second price.
func (r *BidRequest) FirstPrice() bool { return r.AT == 1 }

// GDPRApplies reports the GDPR flag from 2.6 regs.gdpr or, failing that, 2.5 regs.ext.gdpr;
// known is false when the request says neither. A value other than 0 or 1 says nothing: reading an
// unknown value as "does not apply" would be the one unsafe guess.
func (r *BidRequest) GDPRApplies() (applies, known bool) {
	if g := r.Regs.GDPR; g == 0 || g == 1 {
		return g == 1, true
	}
	if len(r.Regs.Ext) > 0 {
		if g, ok := rawInt(r.Regs.Ext, "gdpr"); ok && (g == 0 || g == 1) {
			return g == 1, true
		}
	}
	return false, false
}

// imps is the number of imps the last decode saw, which may be more than it kept.
func (r *BidRequest) imps() int {
	if r.mem == nil {
		return 0
	}
	return r.mem.imps
}

func oneLine(s string, max int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > max {
		s = s[:max] + "…"
	}
	return s
}

// AsError returns err as an *Error, or nil.
func AsError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return nil
}
