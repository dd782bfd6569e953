package campaign

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Micros is money in integer micros of the account currency (USD): 1 USD = 1_000_000.
//
// Files write it as a decimal amount of currency units (2.5, "2.50", 0.03). The decimal text is
// converted exactly, never through float64, so that 0.29 is 290000 and not 289999.
type Micros int64

// MicrosPerUnit is one currency unit in Micros.
const MicrosPerUnit Micros = 1_000_000

const microsDecimals = 6

// maxExponent bounds the exponent of 1e5-style amounts so that parsing is never asked to build a
// number with thousands of digits; any larger exponent overflows int64 micros anyway.
const maxExponent = 30

// ParseMicros converts a decimal amount of currency units such as "2.50", "0.03", "1e3" or "7" to
// Micros, exactly. Signs, NaN, infinities, hex, digit separators and amounts that need more than six
// decimals are refused. Trailing zeros beyond the sixth decimal are accepted: they lose nothing.
func ParseMicros(s string) (Micros, error) {
	m, err := parseMicros(s)
	if err != nil {
		return 0, fmt.Errorf("invalid amount %q: %w", s, err)
	}
	return m, nil
}

func parseMicros(s string) (Micros, error) {
	if s == "" {
		return 0, errors.New("empty")
	}
	switch s[0] {
	case '-':
		return 0, errors.New("must not be negative")
	case '+':
		return 0, errors.New("want a plain decimal number like 2.50, without a sign")
	}
	mant, exp := s, 0
	if i := strings.IndexAny(s, "eE"); i >= 0 {
		mant = s[:i]
		e, err := strconv.Atoi(s[i+1:])
		if err != nil {
			return 0, errors.New("want a decimal number like 2.50")
		}
		if e > maxExponent || e < -maxExponent {
			return 0, errors.New("exponent out of range")
		}
		exp = e
	}
	intPart, fracPart, _ := strings.Cut(mant, ".")
	if intPart == "" && fracPart == "" {
		return 0, errors.New("want a decimal number like 2.50")
	}
	digits := intPart + fracPart
	for i := 0; i < len(digits); i++ {
		if digits[i] < '0' || digits[i] > '9' {
			return 0, errors.New("want a decimal number like 2.50")
		}
	}
	// value = digits × 10^(exp - len(fracPart)); in micros the power is shifted by 6.
	shift := exp - len(fracPart) + microsDecimals
	digits = strings.TrimLeft(digits, "0")
	if shift < 0 {
		cut := len(digits) + shift
		if cut < 0 {
			cut = 0
		}
		if strings.Trim(digits[cut:], "0") != "" {
			return 0, errors.New("more than 6 decimal places (the smallest unit is 0.000001)")
		}
		digits, shift = digits[:cut], 0
	}
	if digits == "" {
		return 0, nil
	}
	const tooLarge = "too large"
	if len(digits)+shift > 19 { // int64 holds at most 19 digits
		return 0, errors.New(tooLarge)
	}
	v, err := strconv.ParseInt(digits+strings.Repeat("0", shift), 10, 64)
	if err != nil {
		return 0, errors.New(tooLarge)
	}
	return Micros(v), nil
}

// String formats m as a decimal amount of currency units with no superfluous zeros: "2.5", "0.03", "2".
func (m Micros) String() string {
	var b []byte
	return string(m.appendText(b))
}

func (m Micros) appendText(b []byte) []byte {
	u := uint64(m)
	if m < 0 {
		b = append(b, '-')
		u = uint64(-m)
	}
	b = strconv.AppendUint(b, u/uint64(MicrosPerUnit), 10)
	frac := u % uint64(MicrosPerUnit)
	if frac == 0 {
		return b
	}
	var digits [microsDecimals]byte
	for i := microsDecimals - 1; i >= 0; i-- {
		digits[i] = byte('0' + frac%10)
		frac /= 10
	}
	b = append(b, '.')
	return append(b, strings.TrimRight(string(digits[:]), "0")...)
}

// Float returns m in currency units, for models and OpenRTB prices, which are floats by specification.
func (m Micros) Float() float64 { return float64(m) / float64(MicrosPerUnit) }

// UnmarshalYAML reads a decimal amount; the error names the line because yaml.v3 cannot add it to an
// unmarshaler's error itself.
func (m *Micros) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: want an amount like 2.50", n.Line)}}
	}
	v, err := ParseMicros(n.Value)
	if err != nil {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: %v", n.Line, err)}}
	}
	*m = v
	return nil
}

// MarshalYAML writes m as a plain decimal number.
func (m Micros) MarshalYAML() (any, error) {
	return &yaml.Node{Kind: yaml.ScalarNode, Value: m.String()}, nil
}

// UnmarshalJSON accepts a JSON number or a string holding one; null leaves m unchanged.
func (m *Micros) UnmarshalJSON(data []byte) error {
	s := string(data)
	if s == "null" {
		return nil
	}
	if strings.HasPrefix(s, `"`) {
		if err := json.Unmarshal(data, &s); err != nil {
			return err
		}
	}
	v, err := ParseMicros(s)
	if err != nil {
		return err
	}
	*m = v
	return nil
}

// MarshalJSON writes m as an exact JSON number of currency units.
func (m Micros) MarshalJSON() ([]byte, error) { return m.appendText(nil), nil }

// UnmarshalText accepts the same text as ParseMicros (flags, environment variables).
func (m *Micros) UnmarshalText(text []byte) error {
	v, err := ParseMicros(string(text))
	if err != nil {
		return err
	}
	*m = v
	return nil
}

// Duration is a time.Duration written as "24h" or "30m" in files.
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

func (d Duration) String() string { return time.Duration(d).String() }

func parseDuration(s string) (Duration, error) {
	v, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("invalid duration %q: want a duration like 24h or 30m", s)
	}
	return Duration(v), nil
}

// UnmarshalYAML reads a duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: want a duration like 24h or 30m", n.Line)}}
	}
	v, err := parseDuration(n.Value)
	if err != nil {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: %v", n.Line, err)}}
	}
	*d = v
	return nil
}

// MarshalYAML writes d as a duration string.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// UnmarshalJSON reads a duration string; null leaves d unchanged.
func (d *Duration) UnmarshalJSON(data []byte) error {
	if string(data) == "null" {
		return nil
	}
	var s string
	if err := json.Unmarshal(data, &s); err != nil {
		return fmt.Errorf("want a duration string like \"24h\": %w", err)
	}
	v, err := parseDuration(s)
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// MarshalJSON writes d as a duration string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// UnmarshalText reads a duration string.
func (d *Duration) UnmarshalText(text []byte) error {
	v, err := parseDuration(string(text))
	if err != nil {
		return err
	}
	*d = v
	return nil
}
