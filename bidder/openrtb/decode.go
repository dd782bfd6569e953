package openrtb

import (
	"bytes"
	"errors"
	"fmt"
	"strings"

	"github.com/bytedance/sonic"
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
)

// Reasons lists every Reason, so that metrics can be pre-registered with all label values.
var Reasons = []Reason{ReasonNotJSON, ReasonEmptyBody, ReasonMissingID, ReasonNoImp, ReasonTooManyImps,
	ReasonImpMissingID, ReasonDuplicateImpID, ReasonImpNoMedia, ReasonNegativeFloor, ReasonMultipleInventory}

// Error is a refusal of a request: Reason is the bounded label, Msg the one-line text for the exchange.
type Error struct {
	Reason Reason
	Msg    string
}

func (e *Error) Error() string { return e.Msg }

func refuse(r Reason, format string, args ...any) *Error {
	return &Error{Reason: r, Msg: fmt.Sprintf(format, args...)}
}

// Strings decoded from the body alias the body buffer (no CopyString): the bid path uses them only
// while the body is alive, and whatever outlives the request must copy.
var api = sonic.Config{}.Froze()

// Reset empties r for reuse, keeping the backing arrays of its slices so that a pooled request
// decodes without reallocating them. Fields that default to "unknown" rather than zero are set here
// because the decoder leaves absent fields as they are.
func (r *BidRequest) Reset() {
	imp := r.Imp[:cap(r.Imp)]
	clear(imp)
	cur, bcat, badv, bapp := r.Cur[:0], r.BCat[:0], r.BAdv[:0], r.BApp[:0]
	*r = BidRequest{Imp: imp[:0], Cur: cur, BCat: bcat, BAdv: badv, BApp: bapp}
	r.Regs.GDPR = -1
}

// Decode resets r, decodes body into it and validates it. The returned error is an *Error.
func Decode(body []byte, r *BidRequest) error {
	r.Reset()
	if len(bytes.TrimSpace(body)) == 0 {
		return refuse(ReasonEmptyBody, "empty body: expected an OpenRTB bid request")
	}
	if err := api.Unmarshal(body, r); err != nil {
		return refuse(ReasonNotJSON, "not a valid OpenRTB JSON bid request: %s", oneLine(err.Error(), 160))
	}
	return r.Validate()
}

// Validate checks what OpenRTB makes mandatory and what a bidder cannot act on without.
func (r *BidRequest) Validate() error {
	if r.ID == "" {
		return refuse(ReasonMissingID, "request id is missing")
	}
	if len(r.Imp) == 0 {
		return refuse(ReasonNoImp, "request %q has no imp", r.ID)
	}
	if len(r.Imp) > MaxImps {
		return refuse(ReasonTooManyImps, "request %q has %d imps, at most %d are accepted", r.ID, len(r.Imp), MaxImps)
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
		if imp.BidFloor < 0 {
			return refuse(ReasonNegativeFloor, "imp %q has a negative bidfloor", imp.ID)
		}
		if imp.PMP != nil {
			for k := range imp.PMP.Deals {
				if imp.PMP.Deals[k].BidFloor < 0 {
					return refuse(ReasonNegativeFloor, "imp %q deal %q has a negative bidfloor", imp.ID, imp.PMP.Deals[k].ID)
				}
			}
		}
	}
	return nil
}

// FirstPrice reports whether the auction is first price; OpenRTB's default (absent at) is second price.
func (r *BidRequest) FirstPrice() bool { return r.AT == 1 }

// GDPRApplies reports the GDPR flag from 2.6 regs.gdpr or, failing that, 2.5 regs.ext.gdpr;
// known is false when the request says neither.
func (r *BidRequest) GDPRApplies() (applies, known bool) {
	if r.Regs.GDPR >= 0 {
		return r.Regs.GDPR == 1, true
	}
	if len(r.Regs.Ext) > 0 {
		var ext struct {
			GDPR *int8 `json:"gdpr"`
		}
		if api.Unmarshal(r.Regs.Ext, &ext) == nil && ext.GDPR != nil {
			return *ext.GDPR == 1, true
		}
	}
	return false, false
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
