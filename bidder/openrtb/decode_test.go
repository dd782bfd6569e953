package openrtb

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const minimal = `{"id":"r1","imp":[{"id":"1","banner":{"w":300,"h":250}}]}`

func TestDecodeRefusals(t *testing.T) {
	tests := []struct {
		name, body string
		reason     Reason
		msg        string // substring of the one-line reason
	}{
		{"empty", "", ReasonEmptyBody, "empty body"},
		{"whitespace", " \n\t", ReasonEmptyBody, "empty body"},
		{"not json", "hello", ReasonNotJSON, "not a valid OpenRTB JSON"},
		{"truncated", `{"id":"r1","imp":[{"id":"1"`, ReasonNotJSON, "not a valid OpenRTB JSON"},
		{"array", `[1,2]`, ReasonNotJSON, "not a valid OpenRTB JSON"},
		{"wrong type", `{"id":"r1","imp":[{"id":"1","banner":{"w":"wide"}}]}`, ReasonNotJSON, "not a valid OpenRTB JSON"},
		{"duplicate key", `{"id":"r1","imp":[{"id":"1","banner":{},"bidfloor":9,"bidfloor":0}]}`, ReasonDuplicateKey, `duplicate key "bidfloor" at byte 53`},
		{"missing id", `{"imp":[{"id":"1","banner":{}}]}`, ReasonMissingID, "request id is missing"},
		{"empty id", `{"id":"","imp":[{"id":"1","banner":{}}]}`, ReasonMissingID, "request id is missing"},
		{"no imp", `{"id":"r1"}`, ReasonNoImp, `request "r1" has no imp`},
		{"empty imp list", `{"id":"r1","imp":[]}`, ReasonNoImp, "has no imp"},
		{"imp without id", `{"id":"r1","imp":[{"banner":{}}]}`, ReasonImpMissingID, "imp[0] has no id"},
		{"duplicate imp ids", `{"id":"r1","imp":[{"id":"1","banner":{}},{"id":"1","video":{"mimes":["video/mp4"]}}]}`, ReasonDuplicateImpID, `imp id "1" appears twice`},
		{"imp without media", `{"id":"r1","imp":[{"id":"1","tagid":"x"}]}`, ReasonImpNoMedia, "none of banner, video, audio, native"},
		{"negative floor", `{"id":"r1","imp":[{"id":"1","banner":{},"bidfloor":-0.5}]}`, ReasonNegativeFloor, "negative bidfloor"},
		{"negative deal floor", `{"id":"r1","imp":[{"id":"1","banner":{},"pmp":{"deals":[{"id":"d","bidfloor":-1}]}}]}`, ReasonNegativeFloor, `deal "d"`},
		{"site and app", `{"id":"r1","imp":[{"id":"1","banner":{}}],"site":{},"app":{}}`, ReasonMultipleInventory, "more than one of site, app and dooh"},
		{"too many imps", `{"id":"r1","imp":[` + strings.Repeat(`{"id":"x","banner":{}},`, MaxImps) + `{"id":"y","banner":{}}]}`, ReasonTooManyImps, "at most 64"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var r BidRequest
			err := Decode([]byte(tc.body), &r)
			e := AsError(err)
			if e == nil {
				t.Fatalf("Decode(%q) = %v, want a refusal %s", tc.body, err, tc.reason)
			}
			if e.Reason != tc.reason {
				t.Errorf("reason = %s, want %s (%s)", e.Reason, tc.reason, e.Msg)
			}
			if !strings.Contains(e.Msg, tc.msg) {
				t.Errorf("message %q does not contain %q", e.Msg, tc.msg)
			}
			if strings.ContainsAny(e.Msg, "\n\r") || len(e.Msg) > 300 {
				t.Errorf("message is not one short line: %q", e.Msg)
			}
		})
	}
}

func TestDecodeAccepts(t *testing.T) {
	tests := []struct {
		name, body string
		check      func(t *testing.T, r *BidRequest)
	}{
		{"unknown fields ignored", `{"id":"r1","imp":[{"id":"1","banner":{"w":300,"h":250,"future":1}}],"brand_new":{"x":[1,2]}}`,
			func(t *testing.T, r *BidRequest) {
				if r.Imp[0].Banner.W != 300 {
					t.Errorf("banner w = %d", r.Imp[0].Banner.W)
				}
			}},
		{"ext kept raw", `{"id":"r1","imp":[{"id":"1","banner":{},"ext":{"prebid":{"a":1}}}],"ext":{"k":"v"}}`,
			func(t *testing.T, r *BidRequest) {
				if string(r.Ext) != `{"k":"v"}` || string(r.Imp[0].Ext) != `{"prebid":{"a":1}}` {
					t.Errorf("ext = %s / %s", r.Ext, r.Imp[0].Ext)
				}
			}},
		{"gdpr unknown when absent", minimal, func(t *testing.T, r *BidRequest) {
			if _, known := r.GDPRApplies(); known {
				t.Error("gdpr known without regs")
			}
		}},
		{"gdpr 2.6", `{"id":"r1","imp":[{"id":"1","banner":{}}],"regs":{"gdpr":1,"us_privacy":"1YNN","gpp":"DBABMA~CPXxRfAPXxRfAAfKABENB-CgAAAAAAAAAAYgAAAAAAAA","gpp_sid":[2]}}`,
			func(t *testing.T, r *BidRequest) {
				if a, known := r.GDPRApplies(); !a || !known {
					t.Errorf("gdpr = %v/%v", a, known)
				}
				if r.Regs.USPrivacy != "1YNN" || len(r.Regs.GPPSID) != 1 {
					t.Errorf("regs = %+v", r.Regs)
				}
			}},
		{"gdpr 2.5 ext", `{"id":"r1","imp":[{"id":"1","banner":{}}],"regs":{"ext":{"gdpr":1}}}`,
			func(t *testing.T, r *BidRequest) {
				if a, known := r.GDPRApplies(); !a || !known {
					t.Errorf("gdpr = %v/%v", a, known)
				}
			}},
		{"at default is second price", minimal, func(t *testing.T, r *BidRequest) {
			if r.FirstPrice() {
				t.Error("absent at read as first price")
			}
		}},
		{"schain and eids", `{"id":"r1","imp":[{"id":"1","banner":{}}],"source":{"schain":{"complete":1,"ver":"1.0","nodes":[{"asi":"x.com","sid":"1","hp":1}]}},"user":{"eids":[{"source":"id5","uids":[{"id":"u","atype":1}]}]}}`,
			func(t *testing.T, r *BidRequest) {
				if r.Source.SChain == nil || r.Source.SChain.Nodes[0].ASI != "x.com" || r.User.EIDs[0].UIDs[0].ID != "u" {
					t.Errorf("source/user = %+v / %+v", r.Source, r.User)
				}
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var r BidRequest
			if err := Decode([]byte(tc.body), &r); err != nil {
				t.Fatalf("Decode: %v", err)
			}
			tc.check(t, &r)
		})
	}
}

// A pooled request must not carry anything of the previous request into the next.
func TestDecodeReuseForgets(t *testing.T) {
	var r BidRequest
	first := `{"id":"a","imp":[{"id":"1","banner":{"w":1,"h":1},"pmp":{"deals":[{"id":"d"}]}},{"id":"2","video":{"mimes":["video/mp4"]}}],"site":{"domain":"a.com"},"bcat":["IAB1"],"regs":{"gdpr":1},"device":{"os":"ios"}}`
	second := `{"id":"b","imp":[{"id":"9","native":{"request":"{}"}}],"app":{"bundle":"x"}}`
	if err := Decode([]byte(first), &r); err != nil {
		t.Fatal(err)
	}
	if err := Decode([]byte(second), &r); err != nil {
		t.Fatal(err)
	}
	imp := r.Imp[0]
	if len(r.Imp) != 1 || imp.Banner != nil || imp.PMP != nil || imp.Video != nil || imp.Native == nil {
		t.Errorf("imp carried state: %+v", imp)
	}
	if r.Site != nil || len(r.BCat) != 0 || r.Regs.GDPR != -1 || r.Device.OS != "" {
		t.Errorf("request carried state: site=%v bcat=%v gdpr=%d os=%q", r.Site, r.BCat, r.Regs.GDPR, r.Device.OS)
	}
}

func TestNativeRequestForms(t *testing.T) {
	obj := `{"ver":"1.2","assets":[{"id":1,"required":1,"title":{"len":90}},{"id":2,"img":{"type":3,"wmin":100,"hmin":100}}]}`
	str, _ := json.Marshal(obj)
	wrapped, _ := json.Marshal(`{"native":` + obj + `}`)
	for name, raw := range map[string]string{"object": obj, "string": string(str), "1.0 wrapped string": string(wrapped)} {
		t.Run(name, func(t *testing.T) {
			var n NativeRequest
			if err := ParseNativeRequest(json.RawMessage(raw), &n); err != nil {
				t.Fatal(err)
			}
			if len(n.Assets) != 2 || n.Assets[0].Title == nil || n.Assets[0].Title.Len != 90 || n.Assets[1].Img.Type != 3 {
				t.Errorf("parsed %+v", n)
			}
		})
	}
	var n NativeRequest
	for _, bad := range []string{``, `"{"`, `42x`} {
		if err := ParseNativeRequest(json.RawMessage(bad), &n); err == nil {
			t.Errorf("ParseNativeRequest(%q) accepted", bad)
		}
	}
}

// sampleRequests returns the IAB example requests of testdata/requests.
func sampleRequests(t testing.TB) map[string][]byte {
	files, _ := filepath.Glob("testdata/requests/*.json")
	out := map[string][]byte{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out[filepath.Base(f)] = b
	}
	return out
}

func TestIABExamplesDecode(t *testing.T) {
	samples := sampleRequests(t)
	if len(samples) < 6 {
		t.Fatalf("found %d example requests in testdata/requests, want the IAB examples", len(samples))
	}
	for name, body := range samples {
		t.Run(name, func(t *testing.T) {
			var r BidRequest
			if err := Decode(body, &r); err != nil {
				t.Fatalf("Decode: %v", err)
			}
			for i := range r.Imp {
				// The 2.5 specification's native example carries a placeholder ("assets":[ ... ])
				// where the asset list belongs; it decodes, but its native request cannot.
				if n := r.Imp[i].Native; n != nil && name != "v25-native.json" {
					var nr NativeRequest
					if err := ParseNativeRequest(n.Request, &nr); err != nil || len(nr.Assets) == 0 {
						t.Errorf("native request of imp %s: %v (%d assets)", r.Imp[i].ID, err, len(nr.Assets))
					}
				}
			}
		})
	}
}

func TestRefusalMessages(t *testing.T) {
	for body, want := range map[string]string{
		"nope": "not a valid OpenRTB JSON bid request: invalid char at byte 1",
		`{"id":"r","imp":[{"id":"1","banner":{"mimes":[1]}}]}`: "not a valid OpenRTB JSON bid request: value at byte 46 has the wrong type (want string)",
		`{"id":"r","imp":[{"id":"1","banner":{}}]} x`:          "not a valid OpenRTB JSON bid request: invalid char at byte 42",
	} {
		err := Decode([]byte(body), new(BidRequest))
		if err == nil || err.Error() != want {
			t.Errorf("Decode(%s) = %v\nwant %s", body, err, want)
		}
	}
}
