package notice

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"
)

var (
	testKey  = []byte("0123456789abcdef0123456789abcdef") // MinKeyLen bytes
	otherKey = []byte("fedcba9876543210fedcba9876543210")
	bidTime  = time.Date(2026, 11, 22, 10, 0, 0, 123_000_000, time.UTC)
)

func newSigner(t testing.TB, key []byte) *Signer {
	t.Helper()
	s, err := NewSigner(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func sampleClaims() Claims {
	return Claims{
		RequestID:  "8f0c4a4e-6b7e-4d0a-9a3c-4b9f0d3e2a11",
		ImpID:      "1",
		CampaignID: "c-42",
		CreativeID: "cr-7",
		Exchange:   "x",
		Currency:   "USD",
		BidMicros:  1_234_567,
		Segment:    "banner-300x250|site",
		User:       0x9e3779b97f4a7c15,
		Time:       bidTime,
	}
}

// sameClaims compares claims with time.Time.Equal for the time.
func sameClaims(a, b Claims) bool {
	at, bt := a.Time, b.Time
	a.Time, b.Time = time.Time{}, time.Time{}
	return a == b && at.Equal(bt)
}

// signRaw makes a token of an arbitrary payload, correctly signed with key: it reaches the parser.
func signRaw(key, payload []byte) string {
	h := hmac.New(sha256.New, key)
	h.Write(payload)
	return base64.RawURLEncoding.EncodeToString(append(append([]byte(nil), payload...), h.Sum(nil)[:tagLen]...))
}

func isRefusal(err error) bool {
	return errors.Is(err, ErrMalformed) || errors.Is(err, ErrSignature)
}

func TestNewSignerKeyLength(t *testing.T) {
	for _, n := range []int{0, 1, 16, MinKeyLen - 1} {
		s, err := NewSigner(make([]byte, n))
		if err == nil || s != nil {
			t.Errorf("NewSigner with a %d-byte key = %v, %v; want an error", n, s, err)
		}
	}
	if _, err := NewSigner(nil); err == nil {
		t.Error("NewSigner(nil) accepted")
	}
	for _, n := range []int{MinKeyLen, 64, 200} {
		if _, err := NewSigner(bytes.Repeat([]byte{'k'}, n)); err != nil {
			t.Errorf("NewSigner with a %d-byte key: %v", n, err)
		}
	}
}

// The signer keeps its own copy of the key: the caller may reuse or wipe its buffer.
func TestNewSignerCopiesKey(t *testing.T) {
	key := append([]byte(nil), testKey...)
	s := newSigner(t, key)
	c := sampleClaims()
	before := string(s.Append(nil, &c))
	clear(key)
	after := string(s.Append(nil, &c))
	if before != after {
		t.Fatal("wiping the caller's key changed the signatures")
	}
	if _, err := newSigner(t, testKey).Verify(after, bidTime, 0); err != nil {
		t.Fatalf("token signed after the caller wiped its key: %v", err)
	}
}

func TestRoundTrip(t *testing.T) {
	s := newSigner(t, testKey)
	zone := time.FixedZone("UTC+2", 2*3600)
	tests := []struct {
		name string
		c    Claims
	}{
		{"typical", sampleClaims()},
		{"all fields empty", Claims{Time: bidTime}},
		{"zero claims", Claims{}},
		{"unicode", Claims{
			RequestID: "requête-été-🚀", ImpID: "印象-1", CampaignID: "кампания", CreativeID: "🎨\u0000nul",
			Exchange: "ex/änge?&=", Currency: "EUR", DealID: "AB-Agency1-0001", BidMicros: 1, Time: bidTime,
		}},
		{"bytes that are not UTF-8", Claims{RequestID: "\xff\xfe\x00", ImpID: "\x80", Time: bidTime}},
		{"fields of exactly 255 bytes", Claims{
			RequestID: strings.Repeat("r", maxField), ImpID: strings.Repeat("i", maxField),
			CampaignID: strings.Repeat("c", maxField), CreativeID: strings.Repeat("k", maxField),
			Exchange: strings.Repeat("x", maxField), Currency: strings.Repeat("u", maxField), Time: bidTime,
		}},
		{"zero price", Claims{RequestID: "r", BidMicros: 0, Time: bidTime}},
		{"largest price", Claims{RequestID: "r", BidMicros: 1 << 62, Time: bidTime}},
		{"nanoseconds and a zone", Claims{RequestID: "r", Time: time.Date(2026, 1, 2, 3, 4, 5, 678_901_234, zone)}},
		{"before 1970", Claims{RequestID: "r", Time: time.Date(1960, 5, 6, 7, 8, 9, 10_000_000, time.UTC)}},
		{"far future", Claims{RequestID: "r", Time: time.Date(9999, 12, 31, 23, 59, 59, 999_000_000, time.UTC)}},
	}
	for _, tt := range tests {
		tok := s.Append(nil, &tt.c)
		for _, b := range tok {
			if !('A' <= b && b <= 'Z' || 'a' <= b && b <= 'z' || '0' <= b && b <= '9' || b == '-' || b == '_') {
				t.Errorf("%s: token %q has a byte %q that is not URL-safe", tt.name, tok, b)
				break
			}
		}
		got, err := s.Verify(string(tok), bidTime, 0)
		if err != nil {
			t.Errorf("%s: Verify: %v", tt.name, err)
			continue
		}
		want := tt.c
		// Time comes back at millisecond precision (UnixMilli truncates toward 1970), in UTC.
		want.Time = time.UnixMilli(tt.c.Time.UnixMilli())
		if !sameClaims(got, want) {
			t.Errorf("%s: Verify = %+v, want %+v", tt.name, got, want)
		}
		if got.Time.Location() != time.UTC {
			t.Errorf("%s: time in %v, want UTC", tt.name, got.Time.Location())
		}
		if tt.c.Time.IsZero() && !got.Time.IsZero() {
			t.Errorf("%s: zero time came back as %v", tt.name, got.Time)
		}
		// Same claims, same token: signing is deterministic.
		if again := s.Append(nil, &tt.c); !bytes.Equal(again, tok) {
			t.Errorf("%s: signing twice gave %q and %q", tt.name, tok, again)
		}
	}
}

func TestTimeMillisecondPrecision(t *testing.T) {
	s := newSigner(t, testKey)
	c := sampleClaims()
	c.Time = time.Date(2026, 11, 22, 10, 0, 0, 123_999_999, time.UTC)
	got, err := s.Verify(string(s.Append(nil, &c)), c.Time, 0)
	if err != nil {
		t.Fatal(err)
	}
	if want := time.Date(2026, 11, 22, 10, 0, 0, 123_000_000, time.UTC); !got.Time.Equal(want) {
		t.Fatalf("time = %v, want %v (truncated, not rounded, to the millisecond)", got.Time, want)
	}
}

// A negative bid price cannot be encoded: it is signed as 0.
func TestNegativePriceSignedAsZero(t *testing.T) {
	s := newSigner(t, testKey)
	c := sampleClaims()
	c.BidMicros = -5
	got, err := s.Verify(string(s.Append(nil, &c)), bidTime, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got.BidMicros != 0 {
		t.Fatalf("negative price came back as %d, want 0", got.BidMicros)
	}
}

// Fields longer than 255 bytes are cut to their first 255 bytes when signed: the token carries, and
// Verify returns, the truncated field. The cut is byte-wise and may split a multi-byte UTF-8
// character, leaving an invalid sequence at the end. Two requests whose ids share their first 255
// bytes therefore get tokens with the same RequestID claim.
func TestLongFieldsTruncated(t *testing.T) {
	s := newSigner(t, testKey)
	long := strings.Repeat("0123456789", 30) // 300 bytes
	accents := strings.Repeat("é", 200)      // 400 bytes, 2 a rune: byte 255 is half a rune
	c := Claims{
		RequestID: long, ImpID: long, CampaignID: long, CreativeID: long, Exchange: long, Currency: accents,
		BidMicros: 7, Time: bidTime,
	}
	tok := s.Append(nil, &c)
	got, err := s.Verify(string(tok), bidTime, 0)
	if err != nil {
		t.Fatal(err)
	}
	want := Claims{
		RequestID: long[:255], ImpID: long[:255], CampaignID: long[:255], CreativeID: long[:255],
		Exchange: long[:255], Currency: accents[:255], BidMicros: 7, Time: bidTime,
	}
	if !sameClaims(got, want) {
		t.Fatalf("Verify = %+v, want every field cut to 255 bytes", got)
	}
	if utf8.ValidString(got.Currency) {
		t.Fatal("expected the byte-wise cut to split the 128th 'é'")
	}
	if !strings.HasPrefix(accents, got.Currency) {
		t.Fatal("truncated field is not a prefix of the original")
	}
	// The truncated claims sign to the very same token.
	if again := s.Append(nil, &got); !bytes.Equal(again, tok) {
		t.Fatal("re-signing the truncated claims gave another token")
	}
}

func TestAppendKeepsPrefix(t *testing.T) {
	s := newSigner(t, testKey)
	c := sampleClaims()
	alone := s.Append(nil, &c)
	dst := s.Append([]byte("https://bidder.example/win?t="), &c)
	if string(dst) != "https://bidder.example/win?t="+string(alone) {
		t.Fatalf("Append into a prefix = %q", dst)
	}
}

const b64url = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

// Changing any one byte of a token, to any other byte of the alphabet or by flipping any one bit,
// makes Verify refuse it.
func TestTamperEveryByte(t *testing.T) {
	s := newSigner(t, testKey)
	for _, c := range []Claims{sampleClaims(), {}, {RequestID: "ab", Time: bidTime}, {RequestID: "abc", Time: bidTime}} {
		tok := string(s.Append(nil, &c))
		if _, err := s.Verify(tok, bidTime, 0); err != nil {
			t.Fatalf("untampered token refused: %v", err)
		}
		b := []byte(tok)
		try := func(i int, v byte) {
			old := b[i]
			b[i] = v
			if got, err := s.Verify(string(b), bidTime, 0); !isRefusal(err) {
				t.Errorf("token of length %d, byte %d changed from %q to %q: Verify = %+v, %v; want ErrSignature or ErrMalformed",
					len(b), i, old, v, got, err)
			}
			b[i] = old
		}
		for i := range b {
			for _, v := range []byte(b64url) {
				if v != b[i] {
					try(i, v)
				}
			}
			for bit := range 8 {
				try(i, b[i]^1<<bit)
			}
		}
	}
}

// A token is signed over its whole payload: a change of any claim changes the tag.
func TestTamperPayloadResigned(t *testing.T) {
	s := newSigner(t, testKey)
	c := sampleClaims()
	tok := string(s.Append(nil, &c))
	raw, _ := base64.RawURLEncoding.DecodeString(tok)
	payload, tag := raw[:len(raw)-tagLen], raw[len(raw)-tagLen:]
	// Raise the price by one and keep the old tag.
	off := 1 + len(binary.AppendUvarint(nil, uint64(c.Time.UnixMilli())))
	_, n := binary.Uvarint(payload[off:])
	forged := append(bytes.Clone(payload[:off]), binary.AppendUvarint(nil, uint64(c.BidMicros+1))...)
	forged = append(forged, payload[off+n:]...)
	if _, err := s.Verify(base64.RawURLEncoding.EncodeToString(append(forged, tag...)), bidTime, 0); !errors.Is(err, ErrSignature) {
		t.Fatalf("price raised under the old tag: %v, want ErrSignature", err)
	}
	// The helper itself is right: the same forgery, signed, verifies with the new price.
	got, err := s.Verify(signRaw(testKey, forged), bidTime, 0)
	if err != nil || got.BidMicros != c.BidMicros+1 {
		t.Fatalf("re-signed forgery = %+v, %v", got, err)
	}
}

func TestOtherKey(t *testing.T) {
	s, other := newSigner(t, testKey), newSigner(t, otherKey)
	c := sampleClaims()
	if _, err := other.Verify(string(s.Append(nil, &c)), bidTime, 0); !errors.Is(err, ErrSignature) {
		t.Fatalf("token of another key: %v, want ErrSignature", err)
	}
	if _, err := s.Verify(string(other.Append(nil, &c)), bidTime, 0); !errors.Is(err, ErrSignature) {
		t.Fatalf("token of another key: %v, want ErrSignature", err)
	}
	// Two signers of the same key are interchangeable (a fleet shares one key).
	if _, err := newSigner(t, testKey).Verify(string(s.Append(nil, &c)), bidTime, 0); err != nil {
		t.Fatalf("token of the same key, another signer: %v", err)
	}
}

func TestTruncatedAndExtended(t *testing.T) {
	s := newSigner(t, testKey)
	c := sampleClaims()
	tok := string(s.Append(nil, &c))
	for n := range len(tok) {
		if _, err := s.Verify(tok[:n], bidTime, 0); !isRefusal(err) {
			t.Errorf("token cut to %d of %d bytes: %v", n, len(tok), err)
		}
		if _, err := s.Verify(tok[n+1:], bidTime, 0); !isRefusal(err) {
			t.Errorf("token without its first %d bytes: %v", n+1, err)
		}
	}
	for _, tail := range []string{"A", "AA", "AAA", "AAAA", "=", "==", ".", "&p=1"} {
		if _, err := s.Verify(tok+tail, bidTime, 0); !isRefusal(err) {
			t.Errorf("token + %q: %v", tail, err)
		}
	}
}

func TestMalformed(t *testing.T) {
	s := newSigner(t, testKey)
	c := sampleClaims()
	tok := string(s.Append(nil, &c))
	std := base64.StdEncoding.EncodeToString([]byte("\xfb\xff\xbf" + strings.Repeat("x", 30)))
	tests := map[string]string{
		"empty":               "",
		"one byte":            "A",
		"garbage":             "!!!!not a token!!!!",
		"spaces":              "    ",
		"standard alphabet":   std,
		"padded":              tok + strings.Repeat("=", (4-len(tok)%4)%4) + "====",
		"too short":           base64.RawURLEncoding.EncodeToString(make([]byte, tagLen)),
		"percent-encoded":     "%41%41%41%41",
		"utf-8":               "éééééééééééééééééééééééééééé",
		"newline inside":      tok[:10] + "\n" + tok[10:],
		"carriage return":     tok[:10] + "\r" + tok[10:],
		"trailing newline":    tok + "\n",
		"space inside":        tok[:10] + " " + tok[10:],
		"NUL":                 tok[:10] + "\x00" + tok[10:],
		"macro not replaced ": "${AUCTION_PRICE}",
	}
	for name, in := range tests {
		if got, err := s.Verify(in, bidTime, 0); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: Verify(%q) = %+v, %v; want ErrMalformed", name, in, got, err)
		}
	}
}

// Payloads that carry a valid tag (only this bidder's key can make them) but do not parse.
func TestSignedButMalformed(t *testing.T) {
	s := newSigner(t, testKey)
	good := func() []byte {
		p := []byte{version}
		p = binary.AppendUvarint(p, uint64(bidTime.UnixMilli()))
		p = binary.AppendUvarint(p, 1000)
		p = binary.AppendUvarint(p, 42) // user
		for range 8 {
			p = binary.AppendUvarint(p, 1)
			p = append(p, 'f')
		}
		return p
	}
	if _, err := s.Verify(signRaw(testKey, good()), bidTime, 0); err != nil {
		t.Fatalf("well-formed signed payload refused: %v", err)
	}
	long := binary.AppendUvarint([]byte{version}, 1)
	long = binary.AppendUvarint(long, 1)
	long = binary.AppendUvarint(long, 7)
	long = binary.AppendUvarint(long, 100) // first field claims 100 bytes, has 1
	long = append(long, 'x')
	tests := map[string][]byte{
		"empty payload":       {},
		"version 0":           append([]byte{0}, good()[1:]...),
		"version 1":           append([]byte{1}, good()[1:]...),
		"version 3":           append([]byte{3}, good()[1:]...),
		"version only":        {version},
		"cut time varint":     {version, 0x80},
		"time varint too big": append([]byte{version}, bytes.Repeat([]byte{0xff}, 11)...),
		"no price":            binary.AppendUvarint([]byte{version}, 1),
		"price over 1<<62":    binary.AppendUvarint(binary.AppendUvarint([]byte{version}, 1), 1<<62+1),
		"no fields":           binary.AppendUvarint(binary.AppendUvarint([]byte{version}, 1), 1),
		"field past the end":  long,
		"seven fields":        good()[:len(good())-2],
		"no user":             binary.AppendUvarint(binary.AppendUvarint([]byte{version}, 1), 1),
		"trailing byte":       append(good(), 0),
		"huge field length":   append(binary.AppendUvarint(binary.AppendUvarint([]byte{version}, 1), 1), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01),
	}
	for name, p := range tests {
		if got, err := s.Verify(signRaw(testKey, p), bidTime, 0); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: Verify = %+v, %v; want ErrMalformed", name, got, err)
		}
	}
}

func TestExpiry(t *testing.T) {
	s := newSigner(t, testKey)
	c := sampleClaims()
	tok := string(s.Append(nil, &c))
	const maxAge = 5 * time.Minute
	tests := []struct {
		name   string
		now    time.Time
		maxAge time.Duration
		want   error
	}{
		{"fresh", bidTime, maxAge, nil},
		{"just within", bidTime.Add(maxAge), maxAge, nil},
		{"a millisecond too old", bidTime.Add(maxAge + time.Millisecond), maxAge, ErrExpired},
		{"a nanosecond too old", bidTime.Add(maxAge + 1), maxAge, ErrExpired},
		{"a day old", bidTime.Add(24 * time.Hour), maxAge, ErrExpired},
		{"maxAge 0: no expiry", bidTime.AddDate(100, 0, 0), 0, nil},
		{"negative maxAge: no expiry", bidTime.AddDate(100, 0, 0), -time.Second, nil},
		// A token from the future (clock skew between bidders) is not refused as expired.
		{"from the future", bidTime.Add(-time.Hour), maxAge, nil},
	}
	for _, tt := range tests {
		got, err := s.Verify(tok, tt.now, tt.maxAge)
		if !errors.Is(err, tt.want) || (tt.want == nil && err != nil) {
			t.Errorf("%s: Verify = %v, want %v", tt.name, err, tt.want)
			continue
		}
		// An expired token still reports its claims, so that the refusal can be logged with them.
		if !sameClaims(got, c) {
			t.Errorf("%s: claims = %+v, want %+v", tt.name, got, c)
		}
	}
	// A zero bid time is as old as can be.
	z := Claims{RequestID: "r"}
	if _, err := s.Verify(string(s.Append(nil, &z)), bidTime, maxAge); !errors.Is(err, ErrExpired) {
		t.Errorf("zero bid time: %v, want ErrExpired", err)
	}
	// Signature comes before expiry: a forged old token is a forgery, not an expired notice.
	if _, err := newSigner(t, otherKey).Verify(tok, bidTime.Add(time.Hour), maxAge); !errors.Is(err, ErrSignature) {
		t.Errorf("old token of another key: %v, want ErrSignature", err)
	}
}

func TestErrorsDistinct(t *testing.T) {
	errs := []error{ErrMalformed, ErrSignature, ErrExpired}
	for i, a := range errs {
		for j, b := range errs {
			if (i == j) != errors.Is(a, b) {
				t.Errorf("errors.Is(%v, %v) = %v", a, b, errors.Is(a, b))
			}
		}
	}
}

func TestAppendZeroAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under -race (sync.Pool drops items)")
	}
	s := newSigner(t, testKey)
	c := sampleClaims()
	c.RequestID = strings.Repeat("r", 200) // a long payload, to be sure the pooled buffer is grown
	dst := make([]byte, 0, 1024)
	for range 10 { // warm the pool
		dst = s.Append(dst[:0], &c)
	}
	if n := testing.AllocsPerRun(1000, func() { dst = s.Append(dst[:0], &c) }); n != 0 {
		t.Fatalf("Append into a grown buffer: %v allocations per run, want 0", n)
	}
}

// Run with -race: one signer shared by many goroutines signing and verifying at once.
func TestConcurrent(t *testing.T) {
	s := newSigner(t, testKey)
	shared := sampleClaims()
	sharedTok := string(s.Append(nil, &shared))
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Go(func() {
			var dst []byte
			for i := range 300 {
				c := Claims{
					RequestID: fmt.Sprintf("req-%d-%d", g, i), ImpID: fmt.Sprint(i % 3), CampaignID: fmt.Sprintf("c-%d", g),
					CreativeID: "cr", Exchange: "x", Currency: "EUR", BidMicros: int64(g*1_000_000 + i),
					Time: bidTime.Add(time.Duration(i) * time.Millisecond),
				}
				dst = s.Append(dst[:0], &c)
				got, err := s.Verify(string(dst), bidTime, 0)
				if err != nil || !sameClaims(got, c) {
					t.Errorf("goroutine %d, %d: Verify = %+v, %v; want %+v", g, i, got, err, c)
					return
				}
				if got, err := s.Verify(sharedTok, bidTime, 0); err != nil || !sameClaims(got, shared) {
					t.Errorf("goroutine %d, %d: shared token: %+v, %v", g, i, got, err)
					return
				}
				if i%10 == 0 {
					bad := []byte(sharedTok)
					bad[i%len(bad)] ^= 0x20
					if _, err := s.Verify(string(bad), bidTime, 0); !isRefusal(err) {
						t.Errorf("goroutine %d, %d: tampered shared token: %v", g, i, err)
						return
					}
				}
			}
		})
	}
	wg.Wait()
}

var fuzzNow = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

// FuzzVerify feeds arbitrary strings to Verify. It must never panic; it must refuse with one of its
// errors; and whatever it accepts must be exactly the token that signing the returned claims gives
// back — one token per set of claims — which in turn verifies to the same claims.
func FuzzVerify(f *testing.F) {
	s := newSigner(f, testKey)
	seeds := []Claims{
		sampleClaims(),
		{},
		{RequestID: "é🚀", ImpID: "\xff", Currency: "JPY", BidMicros: 1 << 62, Time: fuzzNow},
		{RequestID: strings.Repeat("r", 300), BidMicros: 1, Time: fuzzNow.Add(-time.Hour)},
	}
	for _, c := range seeds {
		tok := string(s.Append(nil, &c))
		f.Add(tok)
		f.Add(tok[:len(tok)-1])
		f.Add(tok + "A")
		f.Add(tok[:5] + "\n" + tok[5:])
	}
	f.Add(string(newSigner(f, otherKey).Append(nil, &seeds[0])))
	f.Add("")
	f.Add("A")
	f.Add("!!!!")
	f.Add(signRaw(testKey, []byte{version, 0x80}))
	f.Fuzz(func(t *testing.T, token string) {
		c, err := s.Verify(token, fuzzNow, 0)
		if err != nil {
			if !isRefusal(err) {
				t.Fatalf("Verify(%q): unexpected error %v", token, err)
			}
			return
		}
		if _, err := s.Verify(token, fuzzNow, time.Hour); err != nil && !errors.Is(err, ErrExpired) {
			t.Fatalf("Verify(%q) with a maxAge: %v after accepting it without", token, err)
		}
		again := string(s.Append(nil, &c))
		c2, err := s.Verify(again, fuzzNow, 0)
		if err != nil {
			t.Fatalf("Verify(%q) accepted %+v, whose re-signed token %q is refused: %v", token, c, again, err)
		}
		if !sameClaims(c, c2) {
			t.Fatalf("Verify(%q) = %+v, re-signed it verifies to %+v", token, c, c2)
		}
		if again != token {
			t.Fatalf("Verify accepted %q, but its claims sign to %q: tokens are malleable", token, again)
		}
	})
}

// FuzzRoundTrip signs arbitrary claims: Verify must give them back, fields cut to 255 bytes, time
// to the millisecond, a negative price as 0.
func FuzzRoundTrip(f *testing.F) {
	s := newSigner(f, testKey)
	f.Add("req", "1", "c-42", "cr", "x", "USD", int64(1_234_567), bidTime.UnixNano())
	f.Add("", "", "", "", "", "", int64(0), int64(0))
	f.Add(strings.Repeat("é", 200), "\xff", "🚀", "", "", "EUR", int64(-1), int64(-1))
	f.Fuzz(func(t *testing.T, req, imp, camp, cr, ex, cur string, price, unixNano int64) {
		price = min(price, 1<<62) // the largest price Verify admits
		c := Claims{RequestID: req, ImpID: imp, CampaignID: camp, CreativeID: cr, Exchange: ex, Currency: cur,
			BidMicros: price, Time: time.Unix(0, unixNano)}
		got, err := s.Verify(string(s.Append(nil, &c)), fuzzNow, 0)
		if err != nil {
			t.Fatalf("Verify: %v", err)
		}
		cut := func(s string) string { return s[:min(len(s), maxField)] }
		want := Claims{RequestID: cut(req), ImpID: cut(imp), CampaignID: cut(camp), CreativeID: cut(cr),
			Exchange: cut(ex), Currency: cut(cur), BidMicros: max(price, 0), Time: time.UnixMilli(c.Time.UnixMilli())}
		if !sameClaims(got, want) {
			t.Fatalf("Verify = %+v, want %+v", got, want)
		}
	})
}
