package openrtb

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"unsafe"

	"github.com/bytedance/sonic"
	"github.com/bytedance/sonic/decoder"
	"github.com/bytedance/sonic/option"
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
)

// Reasons lists every Reason, so that metrics can be pre-registered with all label values.
var Reasons = []Reason{ReasonNotJSON, ReasonEmptyBody, ReasonMissingID, ReasonNoImp, ReasonTooManyImps,
	ReasonImpMissingID, ReasonDuplicateImpID, ReasonImpNoMedia, ReasonNegativeFloor, ReasonMultipleInventory, ReasonDealMissingID}

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

// Decoder decodes bid requests; keep one per goroutine (the bidder keeps one in its per-request
// scratch) so that decoding does not allocate a decoder each time.
type Decoder struct {
	d decoder.Decoder
}

// OpenRTB keys are lower case; matching them case-sensitively is both what the specification says
// and faster than encoding/json's case folding.
const decodeOptions = decoder.OptionCaseSensitive

// Decode resets r, decodes body into it and validates it. The returned error is an *Error.
//
// Strings in r alias body: they are valid only while body is, and whatever outlives the request must
// copy them.
func (d *Decoder) Decode(body []byte, r *BidRequest) error {
	r.Reset()
	if len(bytes.TrimSpace(body)) == 0 {
		return refuse(ReasonEmptyBody, "empty body: expected an OpenRTB bid request")
	}
	d.d.Reset(unsafe.String(&body[0], len(body)))
	d.d.SetOptions(decodeOptions)
	err := d.d.Decode(r)
	if err == nil {
		err = d.d.CheckTrailings()
	}
	if err != nil {
		return refuse(ReasonNotJSON, "not a valid OpenRTB JSON bid request: %s", describe(err))
	}
	return r.Validate()
}

// describe turns a decoder error into a short phrase with the byte offset, rather than sonic's
// quoted multi-line excerpt of the input.
func describe(err error) string {
	var se decoder.SyntaxError
	if errors.As(err, &se) {
		return fmt.Sprintf("%s at byte %d", se.Message(), se.Pos)
	}
	var me *decoder.MismatchTypeError
	if errors.As(err, &me) {
		return fmt.Sprintf("value at byte %d has the wrong type (want %s)", me.Pos, me.Type)
	}
	return oneLine(err.Error(), 160)
}

// Decode is Decoder.Decode with a fresh decoder, for callers off the hot path.
func Decode(body []byte, r *BidRequest) error {
	var d Decoder
	return d.Decode(body, r)
}

// Pretouch compiles the decoder for the request types ahead of the first request, so that the first
// bid requests after start do not pay for it.
func Pretouch() error {
	return decoder.Pretouch(reflect.TypeFor[BidRequest](), option.WithCompileRecursiveDepth(4))
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
