package openrtb

import (
	"strconv"
	"unicode/utf8"
)

// BidResponse is the OpenRTB bid response (§4.2.1). It is encoded by AppendJSON, not by reflection,
// so that answering costs no allocation.
type BidResponse struct {
	ID      string
	SeatBid []SeatBid
	BidID   string
	Cur     string
}

// SeatBid groups the bids of one seat (§4.2.2).
type SeatBid struct {
	Bid  []Bid
	Seat string
}

// Bid is one offer for one imp (§4.2.3). Price is in micros of the response currency per mille.
type Bid struct {
	ID      string
	ImpID   string
	Price   int64
	NURL    string
	BURL    string
	LURL    string
	AdM     string
	AdID    string
	ADomain []string
	Bundle  string // the advertised app's store id, for app-install ads
	CID     string
	CrID    string
	Cat     []string
	Attr    []int
	DealID  string
	W, H    int64
	MType   int8 // 2.6: 1 banner, 2 video, 3 audio, 4 native
}

// Media types of Bid.MType.
const (
	MTypeBanner = 1
	MTypeVideo  = 2
	MTypeAudio  = 3
	MTypeNative = 4
)

// Reset empties the response, keeping its backing arrays.
func (r *BidResponse) Reset() {
	for i := range r.SeatBid {
		r.SeatBid[i].Bid = r.SeatBid[i].Bid[:0]
	}
	r.ID, r.BidID, r.Cur = "", "", ""
	r.SeatBid = r.SeatBid[:0]
}

// AppendJSON appends the response as JSON to dst.
func (r *BidResponse) AppendJSON(dst []byte) []byte {
	dst = append(dst, `{"id":`...)
	dst = AppendString(dst, r.ID)
	if r.BidID != "" {
		dst = append(dst, `,"bidid":`...)
		dst = AppendString(dst, r.BidID)
	}
	if r.Cur != "" {
		dst = append(dst, `,"cur":`...)
		dst = AppendString(dst, r.Cur)
	}
	dst = append(dst, `,"seatbid":[`...)
	for i := range r.SeatBid {
		sb := &r.SeatBid[i]
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, `{"bid":[`...)
		for j := range sb.Bid {
			if j > 0 {
				dst = append(dst, ',')
			}
			dst = sb.Bid[j].appendJSON(dst)
		}
		dst = append(dst, ']')
		if sb.Seat != "" {
			dst = append(dst, `,"seat":`...)
			dst = AppendString(dst, sb.Seat)
		}
		dst = append(dst, '}')
	}
	return append(dst, "]}"...)
}

func (b *Bid) appendJSON(dst []byte) []byte {
	dst = append(dst, `{"id":`...)
	dst = AppendString(dst, b.ID)
	dst = append(dst, `,"impid":`...)
	dst = AppendString(dst, b.ImpID)
	dst = append(dst, `,"price":`...)
	dst = AppendMicros(dst, b.Price)
	dst = appendField(dst, "nurl", b.NURL)
	dst = appendField(dst, "burl", b.BURL)
	dst = appendField(dst, "lurl", b.LURL)
	dst = appendField(dst, "adm", b.AdM)
	dst = appendField(dst, "adid", b.AdID)
	if len(b.ADomain) > 0 {
		dst = append(dst, `,"adomain":`...)
		dst = appendStrings(dst, b.ADomain)
	}
	dst = appendField(dst, "bundle", b.Bundle)
	dst = appendField(dst, "cid", b.CID)
	dst = appendField(dst, "crid", b.CrID)
	if len(b.Cat) > 0 {
		dst = append(dst, `,"cat":`...)
		dst = appendStrings(dst, b.Cat)
	}
	if len(b.Attr) > 0 {
		dst = append(dst, `,"attr":[`...)
		for i, a := range b.Attr {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = strconv.AppendInt(dst, int64(a), 10)
		}
		dst = append(dst, ']')
	}
	dst = appendField(dst, "dealid", b.DealID)
	if b.W > 0 {
		dst = append(dst, `,"w":`...)
		dst = strconv.AppendInt(dst, b.W, 10)
	}
	if b.H > 0 {
		dst = append(dst, `,"h":`...)
		dst = strconv.AppendInt(dst, b.H, 10)
	}
	if b.MType > 0 {
		dst = append(dst, `,"mtype":`...)
		dst = strconv.AppendInt(dst, int64(b.MType), 10)
	}
	return append(dst, '}')
}

func appendField(dst []byte, name, v string) []byte {
	if v == "" {
		return dst
	}
	dst = append(dst, ',', '"')
	dst = append(dst, name...)
	dst = append(dst, '"', ':')
	return AppendString(dst, v)
}

func appendStrings(dst []byte, ss []string) []byte {
	dst = append(dst, '[')
	for i, s := range ss {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = AppendString(dst, s)
	}
	return append(dst, ']')
}

// AppendMicros appends an amount in micros as an exact decimal number of currency units
// (2_500_000 -> 2.5): money never passes through a float on its way out.
func AppendMicros(dst []byte, micros int64) []byte {
	if micros < 0 {
		dst = append(dst, '-')
		micros = -micros
	}
	dst = strconv.AppendInt(dst, micros/1_000_000, 10)
	frac := micros % 1_000_000
	if frac == 0 {
		return dst
	}
	var buf [7]byte
	buf[0] = '.'
	for i := 6; i >= 1; i-- {
		buf[i] = byte('0' + frac%10)
		frac /= 10
	}
	n := 7
	for buf[n-1] == '0' {
		n--
	}
	return append(dst, buf[:n]...)
}

const hexDigits = "0123456789abcdef"

// AppendString appends s as a JSON string. It escapes what JSON requires and the JavaScript line
// separators (U+2028, U+2029); markup and URLs stay readable, unlike encoding/json's HTML escaping,
// which a bid response has no use for.
func AppendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
