// Package events is rtb's event backbone: the versioned schema of everything that happens after a bid
// (bids sampled for learning, wins, billing, impressions, clicks, losses), a Kafka producer that never
// blocks the request path and never silently drops money, consumers that are at-least-once and
// idempotent (a Consumer in a group; a Replayer for event-sourced state; a Follower that reads every
// partition without a group, for state every process needs), dead letters, lag, and the embedded
// Kafka-compatible broker `rtb serve` runs when no cluster is named. Nothing outside this package knows which broker is in use or imports kafka-go.
package events

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/bytedance/sonic"
)

// Version is the schema version this code writes and the only one it reads.
const Version = 1

// Type is the kind of an event.
type Type string

// Event types.
const (
	Bid   Type = "bid"   // a bid we made (sampled), for learning
	Win   Type = "win"   // nurl: the exchange says we won
	Bill  Type = "bill"  // burl: the impression is billable; spend counts from here
	Imp   Type = "imp"   // the impression pixel fired
	Click Type = "click" // the click redirect was followed
	Loss  Type = "loss"  // lurl: we lost, with reason and minimum bid to win where sent
	// Traffic counts the auctions campaigns were eligible for on one bidder over a short interval,
	// whether or not pacing admitted them: what the pacer needs to know what full admission would
	// spend. A report carries the counts of every campaign of one partition that saw traffic
	// (Counts), keyed by one of them so that it lands on their partition; an event with Count and
	// no Counts is one campaign's count (CampaignID), as earlier builds wrote.
	Traffic Type = "traffic"
)

// Topics.
const (
	TopicBids        = "rtb.bids"
	TopicWins        = "rtb.wins" // win and bill events
	TopicImpressions = "rtb.impressions"
	TopicClicks      = "rtb.clicks"
	TopicLosses      = "rtb.losses"
	TopicPacing      = "rtb.pacing" // compacted state, key = campaign id
	TopicModels      = "rtb.models" // compacted state
	TopicDLQ         = "rtb.dlq"
)

// TopicOf is the topic events of type t go to ("" for an unknown type).
func TopicOf(t Type) string {
	switch t {
	case Bid, Traffic:
		return TopicBids
	case Win, Bill:
		return TopicWins
	case Imp:
		return TopicImpressions
	case Click:
		return TopicClicks
	case Loss:
		return TopicLosses
	}
	return ""
}

// Money reports whether events of type t move money or count deliveries, and so must never be
// dropped (they spill to disk instead).
func (t Type) Money() bool { return t == Win || t == Bill || t == Imp }

// Event is one event. Money is in integer micros of the account currency.
type Event struct {
	V              int       `json:"v"`
	Type           Type      `json:"type"`
	ID             string    `json:"id"` // unique per logical event: a retried notice has the same id
	TS             time.Time `json:"ts"`
	RequestID      string    `json:"request_id"` // the OpenRTB request id: the correlation id
	ImpID          string    `json:"imp_id"`
	CampaignID     string    `json:"campaign_id"` // the Kafka key
	CreativeID     string    `json:"creative_id,omitempty"`
	DealID         string    `json:"deal_id,omitempty"`
	Exchange       string    `json:"exchange"`
	PriceMicros    int64     `json:"price_micros"`                // what the exchange charged (win, bill, imp)
	BidMicros      int64     `json:"bid_micros"`                  // what we bid
	MinToWinMicros int64     `json:"min_to_win_micros,omitempty"` // loss: the exchange's minimum bid to win
	Reason         int       `json:"reason"`                      // loss: the OpenRTB loss reason code
	Count          int64     `json:"count,omitempty"`             // traffic: auctions counted (the sum of Counts in a report)
	// Counts is a traffic report's auctions per campaign, sorted by campaign id.
	Counts Counts `json:"counts,omitempty"`
	// Segment is the inventory the bid was for, "FORMAT|INVENTORY" (e.g. "banner-300x250|site",
	// "video|app"): with Exchange, the key of bid-shading and click-through models.
	Segment string `json:"segment,omitempty"`
	// User is the 64-bit hash of the exchange's user id (user.buyeruid, else user.id) in 16 hex
	// digits, "" when the request named no user: the key of frequency caps. Raw ids never leave the
	// bid path.
	User string `json:"user,omitempty"`
}

// AppendJSON appends e as one line of JSON (no trailing newline). It does not allocate beyond growing
// dst, so the request path can encode events into reused buffers.
func (e *Event) AppendJSON(dst []byte) []byte {
	dst = append(dst, `{"v":`...)
	dst = strconv.AppendInt(dst, int64(e.V), 10)
	dst = append(dst, `,"type":`...)
	dst = appendString(dst, string(e.Type))
	dst = append(dst, `,"id":`...)
	dst = appendString(dst, e.ID)
	dst = append(dst, `,"ts":"`...)
	dst = e.TS.UTC().AppendFormat(dst, "2006-01-02T15:04:05.000Z07:00")
	dst = append(dst, `","request_id":`...)
	dst = appendString(dst, e.RequestID)
	dst = append(dst, `,"imp_id":`...)
	dst = appendString(dst, e.ImpID)
	dst = append(dst, `,"campaign_id":`...)
	dst = appendString(dst, e.CampaignID)
	if e.CreativeID != "" {
		dst = append(dst, `,"creative_id":`...)
		dst = appendString(dst, e.CreativeID)
	}
	if e.DealID != "" {
		dst = append(dst, `,"deal_id":`...)
		dst = appendString(dst, e.DealID)
	}
	dst = append(dst, `,"exchange":`...)
	dst = appendString(dst, e.Exchange)
	dst = append(dst, `,"price_micros":`...)
	dst = strconv.AppendInt(dst, e.PriceMicros, 10)
	dst = append(dst, `,"bid_micros":`...)
	dst = strconv.AppendInt(dst, e.BidMicros, 10)
	if e.MinToWinMicros != 0 {
		dst = append(dst, `,"min_to_win_micros":`...)
		dst = strconv.AppendInt(dst, e.MinToWinMicros, 10)
	}
	dst = append(dst, `,"reason":`...)
	dst = strconv.AppendInt(dst, int64(e.Reason), 10)
	if e.Count != 0 {
		dst = append(dst, `,"count":`...)
		dst = strconv.AppendInt(dst, e.Count, 10)
	}
	if len(e.Counts) > 0 {
		dst = append(dst, `,"counts":{`...)
		for i, c := range e.Counts {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendString(dst, c.CampaignID)
			dst = append(dst, ':')
			dst = strconv.AppendInt(dst, c.N, 10)
		}
		dst = append(dst, '}')
	}
	if e.Segment != "" {
		dst = append(dst, `,"segment":`...)
		dst = appendString(dst, e.Segment)
	}
	if e.User != "" {
		dst = append(dst, `,"user":`...)
		dst = appendString(dst, e.User)
	}
	return append(dst, '}')
}

// Strict decoding: a field this version does not know is an error, not something to skip, because an
// event written by a newer schema must not be half-understood. Strings are copied: events outlive the
// message buffers they are read from.
var strict = sonic.Config{DisallowUnknownFields: true, CopyString: true}.Froze()

// ErrVersion is returned for an event of a schema version this code does not read.
var ErrVersion = errors.New("unknown event schema version")

// MaxEventBytes is the largest event Decode reads. Events are a few hundred bytes and a traffic
// report is split past 512 KB; anything larger was not written by rtb (a well-formed bill with a
// megabyte of request id would otherwise count as spend) and goes to the dead-letter topic.
const MaxEventBytes = 1 << 20

// typePrefix is how AppendJSON starts every event of this Version, up to the type's value.
const typePrefix = `{"v":1,"type":"`

// PeekType reads the type of an event from the start of data, as AppendJSON writes it, without
// decoding the rest: ok is false unless data starts that way with a known type. It says nothing
// of whether the rest is a valid event (Decode does); it lets a reader pass over events it does
// not want for the cost of a comparison. It does not allocate.
func PeekType(data []byte) (t Type, ok bool) {
	if len(data) < len(typePrefix) || string(data[:len(typePrefix)]) != typePrefix {
		return "", false
	}
	rest := data[len(typePrefix):]
	end := bytes.IndexByte(rest, '"')
	if end < 0 || end+1 >= len(rest) || rest[end+1] != ',' {
		return "", false
	}
	switch Type(rest[:end]) {
	case Bid:
		return Bid, true
	case Win:
		return Win, true
	case Bill:
		return Bill, true
	case Imp:
		return Imp, true
	case Click:
		return Click, true
	case Loss:
		return Loss, true
	case Traffic:
		return Traffic, true
	}
	return "", false
}

// Decode reads one event strictly: broken JSON, unknown fields, an unknown version or type, a
// missing id, campaign or timestamp, or more than MaxEventBytes are errors (such messages belong in
// the dead-letter topic).
func Decode(data []byte) (Event, error) {
	var e Event
	if len(data) > MaxEventBytes {
		return Event{}, fmt.Errorf("event of %d bytes: more than the %d an event may take", len(data), MaxEventBytes)
	}
	data = bytes.TrimSpace(data)
	if err := strict.Unmarshal(data, &e); err != nil {
		return Event{}, fmt.Errorf("decode event: %w", err)
	}
	if e.V != Version {
		return Event{}, fmt.Errorf("event v=%d: %w (this build reads v=%d)", e.V, ErrVersion, Version)
	}
	if TopicOf(e.Type) == "" {
		return Event{}, fmt.Errorf("event %q: unknown type %q", e.ID, e.Type)
	}
	switch {
	case e.ID == "":
		return Event{}, errors.New("event without id")
	case e.CampaignID == "":
		return Event{}, fmt.Errorf("event %q without campaign_id", e.ID)
	case e.TS.IsZero():
		return Event{}, fmt.Errorf("event %q without ts", e.ID)
	case e.TS.UTC().Year() < 2000 || e.TS.UTC().Year() > 9999:
		// Beyond year 9999 in UTC the timestamp cannot be written back in RFC 3339.
		return Event{}, fmt.Errorf("event %q with ts %s out of range", e.ID, e.TS.Format(time.RFC3339))
	case e.PriceMicros < 0 || e.BidMicros < 0 || e.Count < 0:
		return Event{}, fmt.Errorf("event %q with a negative amount", e.ID)
	case len(e.Counts) > 0 && e.Type != Traffic:
		return Event{}, fmt.Errorf("event %q: counts on a %s event", e.ID, e.Type)
	}
	for _, c := range e.Counts {
		if c.CampaignID == "" || c.N < 0 {
			return Event{}, fmt.Errorf("event %q: traffic count %q: %d: want a campaign id and a count ≥ 0", e.ID, c.CampaignID, c.N)
		}
	}
	return e, nil
}

// CampaignCount is one campaign's count in a traffic report.
type CampaignCount struct {
	CampaignID string
	N          int64
}

// Counts is a traffic report's counts: on the wire a JSON object from campaign id to count
// ({"c-1":12,"c-2":3}), compact enough for tens of thousands of campaigns in a message and readable
// with any client; in memory sorted by campaign id, so that a decoded report re-encodes the same.
type Counts []CampaignCount

// UnmarshalJSON reads the wire object. A campaign named twice is refused: a report is written once
// per campaign, and two counts would leave which one was meant to chance.
func (c *Counts) UnmarshalJSON(b []byte) error {
	var m map[string]int64
	if err := strict.Unmarshal(b, &m); err != nil {
		return fmt.Errorf("traffic counts: %w", err)
	}
	if bytes.Count(b, []byte{':'}) > len(m) {
		// A key may contain ':' itself, so the cheap test only says "maybe"; count the keys properly.
		if keys, err := objectKeys(b); err != nil || keys != len(m) {
			return errors.New("traffic counts: a campaign is named twice")
		}
	}
	out := make(Counts, 0, len(m))
	for id, n := range m {
		out = append(out, CampaignCount{id, n})
	}
	slices.SortFunc(out, func(a, b CampaignCount) int { return strings.Compare(a.CampaignID, b.CampaignID) })
	*c = out
	return nil
}

// objectKeys counts the keys of the flat JSON object b (values are numbers).
func objectKeys(b []byte) (int, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	if _, err := dec.Token(); err != nil {
		return 0, err
	}
	n := 0
	for dec.More() {
		if _, err := dec.Token(); err != nil { // key
			return 0, err
		}
		if _, err := dec.Token(); err != nil { // value
			return 0, err
		}
		n++
	}
	return n, nil
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string. (The bid path has its own encoder in bidder/openrtb; this
// package must not depend on the bidder.)
func appendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			continue
		}
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRuneInString(s[i:])
			if r != utf8.RuneError || size != 1 {
				i += size - 1
				continue
			}
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			start = i + 1
			continue
		}
		dst = append(dst, s[start:i]...)
		switch c {
		case '"', '\\':
			dst = append(dst, '\\', c)
		default:
			dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		}
		start = i + 1
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
