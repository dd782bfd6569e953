// Package notice signs and verifies the tokens carried by the notice URLs of a bid (nurl, burl, lurl,
// the impression pixel and the click redirect), so that only notices for bids this bidder really made
// can ever become spend.
//
// A token is base64url(payload ‖ tag), where the payload holds the bid's facts (request id, imp id,
// campaign, creative, exchange, currency, deal, bid price, time) and tag is the first 16 bytes of HMAC-SHA256 over
// the payload. Tokens are compact, need no server-side state, and are checked in constant time.
package notice

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"sync"
	"time"
)

const (
	version = 2 // 2 added the segment and the user hash; tokens of version 1 are refused
	tagLen  = 16
	// MinKeyLen is the shortest signing key accepted: HMAC-SHA256 wants at least its output size.
	MinKeyLen = 32
	maxField  = 255
)

// Claims are the facts of one bid that its notices refer to.
type Claims struct {
	RequestID  string
	ImpID      string
	CampaignID string
	CreativeID string
	Exchange   string
	DealID     string    // the deal the bid was made in, if any
	Currency   string    // currency of the bid and of the price the exchange substitutes
	BidMicros  int64     // our bid in micros of Currency per mille: a notice claiming more is refused
	Time       time.Time // when the bid was made (millisecond precision)
	Segment    string    // the inventory segment of the bid (see events.Event.Segment)
	User       uint64    // hash of the exchange's user id, 0 for none (see events.Event.User)
}

// Signer signs and verifies tokens with one key; it is safe for concurrent use.
type Signer struct {
	pool sync.Pool
}

// NewSigner returns a signer for key, which must be at least MinKeyLen bytes.
func NewSigner(key []byte) (*Signer, error) {
	if len(key) < MinKeyLen {
		return nil, fmt.Errorf("notice signing key has %d bytes, need at least %d", len(key), MinKeyLen)
	}
	k := append([]byte(nil), key...)
	s := &Signer{}
	s.pool.New = func() any { return &mac{h: hmac.New(sha256.New, k)} }
	return s, nil
}

type mac struct {
	h   hash.Hash
	buf []byte
	sum []byte
}

// Append appends the token for c to dst. It does not allocate once its pooled buffers are warm.
func (s *Signer) Append(dst []byte, c *Claims) []byte {
	m := s.pool.Get().(*mac)
	p := m.buf[:0]
	p = append(p, version)
	p = binary.AppendUvarint(p, uint64(c.Time.UnixMilli()))
	p = binary.AppendUvarint(p, uint64(max(c.BidMicros, 0)))
	p = binary.AppendUvarint(p, c.User)
	for _, f := range [...]string{c.RequestID, c.ImpID, c.CampaignID, c.CreativeID, c.Exchange, c.Currency, c.DealID, c.Segment} {
		if len(f) > maxField {
			f = f[:maxField]
		}
		p = binary.AppendUvarint(p, uint64(len(f)))
		p = append(p, f...)
	}
	m.h.Reset()
	m.h.Write(p)
	m.sum = m.h.Sum(m.sum[:0])
	p = append(p, m.sum[:tagLen]...)
	dst = base64.RawURLEncoding.AppendEncode(dst, p)
	m.buf = p
	s.pool.Put(m)
	return dst
}

// Errors of Verify, distinguishable so that refusals can be counted by kind.
var (
	ErrMalformed = errors.New("malformed notice token")
	ErrSignature = errors.New("notice token signature does not match")
	ErrExpired   = errors.New("notice token expired")
)

// strict decodes tokens canonically: the unused low bits of the last character must be zero. With the
// length check in Verify (the decoder skips CR and LF), one set of claims has exactly one token, so
// a notice cannot be replayed under variants of its token.
var strict = base64.RawURLEncoding.Strict()

// Verify checks token and returns its claims. A token older than maxAge (if > 0) at now is refused.
func (s *Signer) Verify(token string, now time.Time, maxAge time.Duration) (Claims, error) {
	raw, err := strict.DecodeString(token)
	if err != nil || len(raw) < 1+tagLen || len(token) != strict.EncodedLen(len(raw)) {
		return Claims{}, ErrMalformed
	}
	payload, tag := raw[:len(raw)-tagLen], raw[len(raw)-tagLen:]
	m := s.pool.Get().(*mac)
	m.h.Reset()
	m.h.Write(payload)
	m.sum = m.h.Sum(m.sum[:0])
	ok := hmac.Equal(m.sum[:tagLen], tag)
	s.pool.Put(m)
	if !ok {
		return Claims{}, ErrSignature
	}
	c, err := parse(payload)
	if err != nil {
		return Claims{}, err
	}
	if maxAge > 0 && now.Sub(c.Time) > maxAge {
		return c, ErrExpired
	}
	return c, nil
}

func parse(p []byte) (Claims, error) {
	var c Claims
	if len(p) == 0 || p[0] != version {
		return c, ErrMalformed
	}
	p = p[1:]
	ms, n := binary.Uvarint(p)
	if n <= 0 {
		return c, ErrMalformed
	}
	p = p[n:]
	price, n := binary.Uvarint(p)
	if n <= 0 || price > 1<<62 {
		return c, ErrMalformed
	}
	p = p[n:]
	user, n := binary.Uvarint(p)
	if n <= 0 {
		return c, ErrMalformed
	}
	p = p[n:]
	var fields [8]string
	for i := range fields {
		l, n := binary.Uvarint(p)
		if n <= 0 || l > uint64(len(p)-n) {
			return c, ErrMalformed
		}
		fields[i] = string(p[n : n+int(l)])
		p = p[n+int(l):]
	}
	if len(p) != 0 {
		return c, ErrMalformed
	}
	c.RequestID, c.ImpID, c.CampaignID, c.CreativeID, c.Exchange, c.Currency, c.DealID, c.Segment = fields[0], fields[1], fields[2], fields[3], fields[4], fields[5], fields[6], fields[7]
	c.User = user
	c.BidMicros = int64(price)
	c.Time = time.UnixMilli(int64(ms)).UTC()
	return c, nil
}
