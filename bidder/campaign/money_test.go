package campaign

import (
	"encoding/json"
	"math"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

func TestParseMicros(t *testing.T) {
	tests := []struct {
		in      string
		want    Micros
		wantErr string // substring; "" = no error
	}{
		{in: "0", want: 0},
		{in: "2", want: 2_000_000},
		{in: "2.5", want: 2_500_000},
		{in: "2.50", want: 2_500_000},
		{in: "0.03", want: 30_000},
		{in: "0.29", want: 290_000}, // float64(0.29)*1e6 truncates to 289999
		{in: "1.13", want: 1_130_000},
		{in: "0.000001", want: 1},
		{in: "0.2900000", want: 290_000}, // trailing zeros beyond six decimals lose nothing
		{in: ".5", want: 500_000},
		{in: "5.", want: 5_000_000},
		{in: "007.10", want: 7_100_000},
		{in: "1e3", want: 1_000_000_000},
		{in: "2.5E-1", want: 250_000},
		{in: "1e-6", want: 1},
		{in: "1e+2", want: 100_000_000},
		{in: "0e30", want: 0},
		{in: "9223372036854.775807", want: math.MaxInt64},
		{in: "1e-7", wantErr: "more than 6 decimal places"},
		{in: "0.0000001", wantErr: "more than 6 decimal places"},
		{in: "1.0000001", wantErr: "more than 6 decimal places"},
		{in: "9223372036854.775808", wantErr: "too large"},
		{in: "1e13", wantErr: "too large"},
		{in: "1e400", wantErr: "exponent out of range"},
		{in: "1e-400", wantErr: "exponent out of range"},
		{in: "-1", wantErr: "negative"},
		{in: "-0", wantErr: "negative"},
		{in: "+1", wantErr: "without a sign"},
		{in: "", wantErr: "empty"},
		{in: ".", wantErr: "decimal number"},
		{in: "e5", wantErr: "decimal number"},
		{in: "1e", wantErr: "decimal number"},
		{in: "1.2.3", wantErr: "decimal number"},
		{in: "1_000", wantErr: "decimal number"},
		{in: "0x10", wantErr: "decimal number"},
		{in: " 1", wantErr: "decimal number"},
		{in: "1,50", wantErr: "decimal number"},
		{in: "NaN", wantErr: "decimal number"},
		{in: "Inf", wantErr: "decimal number"},
		{in: ".inf", wantErr: "decimal number"},
		{in: "$2", wantErr: "decimal number"},
	}
	for _, tt := range tests {
		got, err := ParseMicros(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ParseMicros(%q) = %d, %v; want error containing %q", tt.in, got, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseMicros(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
		}
	}
}

func TestMicrosString(t *testing.T) {
	for m, want := range map[Micros]string{
		0: "0", 1: "0.000001", 30_000: "0.03", 290_000: "0.29", 2_500_000: "2.5", 1_000_000: "1",
		-1_500_000: "-1.5", 123_456_789: "123.456789", math.MaxInt64: "9223372036854.775807",
	} {
		if got := m.String(); got != want {
			t.Errorf("Micros(%d).String() = %q, want %q", int64(m), got, want)
		}
		if m >= 0 {
			if back, err := ParseMicros(want); err != nil || back != m {
				t.Errorf("ParseMicros(%q) = %d, %v; want %d", want, back, err, m)
			}
		}
	}
}

func TestMicrosCodecs(t *testing.T) {
	var v struct {
		A Micros `json:"a" yaml:"a"`
		B Micros `json:"b" yaml:"b"`
		C Micros `json:"c" yaml:"c"`
	}
	if err := json.Unmarshal([]byte(`{"a": 0.29, "b": "2.50", "c": null}`), &v); err != nil {
		t.Fatal(err)
	}
	if v.A != 290_000 || v.B != 2_500_000 || v.C != 0 {
		t.Errorf("json: got %+v", v)
	}
	out, err := json.Marshal(v)
	if err != nil || string(out) != `{"a":0.29,"b":2.5,"c":0}` {
		t.Errorf("json.Marshal = %s, %v", out, err)
	}
	for _, bad := range []string{`{"a": true}`, `{"a": -1}`, `{"a": "x"}`, `{"a": 1.0000001}`} {
		if err := json.Unmarshal([]byte(bad), &v); err == nil {
			t.Errorf("json.Unmarshal(%s): no error", bad)
		}
	}

	v.A, v.B, v.C = 0, 0, 0
	if err := yaml.Unmarshal([]byte("a: 0.29\nb: \"2.50\"\nc: 1e2\n"), &v); err != nil {
		t.Fatal(err)
	}
	if v.A != 290_000 || v.B != 2_500_000 || v.C != 100_000_000 {
		t.Errorf("yaml: got %+v", v)
	}
	out, err = yaml.Marshal(v)
	if err != nil || string(out) != "a: 0.29\nb: 2.5\nc: 100\n" {
		t.Errorf("yaml.Marshal = %q, %v", out, err)
	}
	err = yaml.Unmarshal([]byte("a: 1\nb: [1]\nc: -3\n"), &v)
	if err == nil || !strings.Contains(err.Error(), "line 2") || !strings.Contains(err.Error(), "line 3: invalid amount") {
		t.Errorf("yaml errors should name their lines, got %v", err)
	}

	var m Micros
	if err := m.UnmarshalText([]byte("0.03")); err != nil || m != 30_000 {
		t.Errorf("UnmarshalText = %d, %v", m, err)
	}
	if got := Micros(2_500_000).Float(); got != 2.5 {
		t.Errorf("Float() = %v", got)
	}
}

func TestDurationCodecs(t *testing.T) {
	var v struct {
		W Duration `json:"w" yaml:"w"`
	}
	if err := json.Unmarshal([]byte(`{"w":"90m"}`), &v); err != nil || v.W.D().Minutes() != 90 {
		t.Errorf("json: %v, %v", v.W, err)
	}
	if out, _ := json.Marshal(v); string(out) != `{"w":"1h30m0s"}` {
		t.Errorf("json.Marshal = %s", out)
	}
	if err := json.Unmarshal([]byte(`{"w":5}`), &v); err == nil {
		t.Error("json: a bare number must not be a duration")
	}
	if err := yaml.Unmarshal([]byte("w: 24h\n"), &v); err != nil || v.W.D().Hours() != 24 {
		t.Errorf("yaml: %v, %v", v.W, err)
	}
	if err := yaml.Unmarshal([]byte("w: 1 day\n"), &v); err == nil || !strings.Contains(err.Error(), "line 1") {
		t.Errorf("yaml: want an error naming line 1, got %v", err)
	}
	var d Duration
	if err := d.UnmarshalText([]byte("30m")); err != nil || d.String() != "30m0s" {
		t.Errorf("UnmarshalText = %v, %v", d, err)
	}
}
