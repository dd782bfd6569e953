package openrtb

import (
	"math"
	"reflect"
	"strings"
	"testing"
)

// wrap puts a fragment of request fields around a valid minimal request.
func wrap(fields string) string {
	return `{"id":"r1","imp":[{"id":"1","banner":{"w":300,"h":250}}],` + fields + `}`
}

// The decoder is strict JSON where sonic was lax: each of these used to be accepted, or must stay
// refused, and is a 400 not_json.
func TestDecodeRefusesInvalidJSON(t *testing.T) {
	deep := strings.Repeat("[", MaxDepth) + strings.Repeat("]", MaxDepth)
	tests := []struct{ name, body, msg string }{
		{"invalid escape", `{"id":"r\x","imp":[{"id":"1","banner":{}}]}`, "invalid escape at byte 9"},
		{"short unicode escape", `{"id":"r\u12","imp":[{"id":"1","banner":{}}]}`, "invalid escape"},
		{"invalid utf-8 in a value", "{\"id\":\"r\xff\",\"imp\":[{\"id\":\"1\",\"banner\":{}}]}", "invalid UTF-8 in string at byte 8"},
		{"truncated utf-8", "{\"id\":\"r\xe2\x82\",\"imp\":[{\"id\":\"1\",\"banner\":{}}]}", "invalid UTF-8"},
		{"utf-8 surrogate half", "{\"id\":\"r\xed\xa0\x80\",\"imp\":[{\"id\":\"1\",\"banner\":{}}]}", "invalid UTF-8"},
		{"invalid utf-8 in a key", wrap("\"k\xc0\":1"), "invalid UTF-8"},
		{"invalid utf-8 in ext", wrap("\"ext\":{\"a\":\"\xff\"}"), "invalid UTF-8"},
		{"control character", "{\"id\":\"r\tx\",\"imp\":[{\"id\":\"1\",\"banner\":{}}]}", "control character in string"},
		{"trailing garbage", wrap(`"test":0`) + `}`, "invalid char"},
		{"two documents", wrap(`"test":0`) + ` {}`, "invalid char"},
		{"NaN", wrap(`"ext":{"a":NaN}`), "invalid char"},
		{"Infinity", wrap(`"tmax":Infinity`), "invalid char"},
		{"-Infinity", wrap(`"ext":[-Infinity]`), "invalid char"},
		{"leading zero", wrap(`"tmax":01`), "invalid char"},
		{"plus sign", wrap(`"tmax":+1`), "invalid char"},
		{"bare fraction", wrap(`"ext":.5`), "invalid char"},
		{"dangling point", wrap(`"ext":1.`), "invalid char"},
		{"dangling exponent", wrap(`"ext":1e`), "invalid char"},
		{"float out of range", `{"id":"r","imp":[{"id":"1","banner":{},"bidfloor":1e400}]}`, "number out of range"},
		{"fractional integer", `{"id":"r","imp":[{"id":"1","banner":{"w":300.5}}]}`, "wrong type (want integer)"},
		{"words for an integer", `{"id":"r","imp":[{"id":"1","banner":{"w":"wide"}}]}`, "wrong type (want integer)"},
		{"quoted number with spaces", `{"id":"r","imp":[{"id":"1","banner":{"w":" 300"}}]}`, "wrong type (want integer)"},
		{"quoted number with an escape", `{"id":"r","imp":[{"id":"1","banner":{"w":"\u0033"}}]}`, "wrong type (want integer)"},
		{"quoted NaN", wrap(`"tmax":"NaN"`), "wrong type (want integer)"},
		{"quoted Infinity for a float", `{"id":"r","imp":[{"id":"1","banner":{},"bidfloor":"Infinity"}]}`, "wrong type (want number)"},
		{"quoted hex", wrap(`"tmax":"0x10"`), "wrong type (want integer)"},
		{"quoted fraction for an integer", `{"id":"r","imp":[{"id":"1","banner":{"w":"300.5"}}]}`, "wrong type (want integer)"},
		{"quoted number out of range", `{"id":"r","imp":[{"id":"1","banner":{},"bidfloor":"1e400"}]}`, "wrong type (want number)"},
		{"number for a string that is no id", `{"id":"r","imp":[{"id":"1","banner":{"mimes":[1]}}]}`, "wrong type (want string)"},
		{"bool for an id", `{"id":true,"imp":[{"id":"1","banner":{}}]}`, "wrong type (want string)"},
		{"invalid number for an id", `{"id":01,"imp":[{"id":"1","banner":{}}]}`, "invalid char"},
		{"number in keywords", wrap(`"user":{"keywords":["a",1]}`), "wrong type (want string)"},
		{"object for protocol", `{"id":"r","imp":[{"id":"1","video":{"mimes":[],"protocol":{}}}]}`, "wrong type (want integer)"},
		{"bool for an integer", wrap(`"test":true`), "wrong type (want integer)"},
		{"object for a string", `{"id":{},"imp":[]}`, "wrong type (want string)"},
		{"array for an object", wrap(`"site":[]`), "wrong type (want object)"},
		{"object for an array", wrap(`"bcat":{}`), "wrong type (want array)"},
		{"wrong type deep inside an unknown value is still JSON-checked", wrap(`"site":[1,}`), "invalid char"},
		{"nesting too deep", wrap(`"ext":` + deep), "nesting deeper than 64"},
		{"nesting too deep in known fields", wrap(`"user":{"ext":` + deep[1:len(deep)-1] + `}`), "nesting deeper than 64"},
		{"unterminated string", `{"id":"r1`, "unexpected end of input"},
		{"missing colon", `{"id" "r1"}`, "invalid char"},
		{"trailing comma in object", `{"id":"r1",}`, "invalid char"},
		{"trailing comma in array", wrap(`"bcat":["a",]`), "invalid char"},
		{"single quotes", `{'id':'r1'}`, "invalid char"},
		{"bad literal", wrap(`"ext":nul`), "invalid char"},
		{"top-level string", `"r1"`, "wrong type (want object)"},
		{"top-level number", `42`, "wrong type (want object)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var r BidRequest
			e := AsError(Decode([]byte(tc.body), &r))
			if e == nil || e.Reason != ReasonNotJSON {
				t.Fatalf("Decode(%q) = %v, want a not_json refusal", tc.body, e)
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

// Where OpenRTB asks for leniency the decoder gives it.
func TestDecodeLenient(t *testing.T) {
	deep := strings.Repeat("[", MaxDepth-2) + strings.Repeat("]", MaxDepth-2)
	tests := []struct {
		name, body string
		check      func(t *testing.T, r *BidRequest)
	}{
		{"exchange-specific auction type", wrap(`"at":500`), func(t *testing.T, r *BidRequest) {
			if r.FirstPrice() || r.AT == 1 || r.AT == 2 {
				t.Errorf("at 500 read as %d", r.AT)
			}
		}},
		{"exchange-specific deal auction type", `{"id":"r","imp":[{"id":"1","banner":{},"pmp":{"deals":[{"id":"d","at":500}]}}]}`, func(t *testing.T, r *BidRequest) {
			if at := r.Imp[0].PMP.Deals[0].AT; at == 1 || at == 2 || at == 3 {
				t.Errorf("deal at 500 read as %d", at)
			}
		}},
		{"negative enum beyond int8", wrap(`"device":{"devicetype":-1000}`), func(t *testing.T, r *BidRequest) {
			if r.Device.DeviceType != math.MinInt8 {
				t.Errorf("devicetype = %d", r.Device.DeviceType)
			}
		}},
		{"integral floats for integers", `{"id":"r","imp":[{"id":"1","banner":{"w":300.0,"h":2.5e2,"format":[{"w":3.2e+2,"h":50.00}]}}],"tmax":1.2E2}`, func(t *testing.T, r *BidRequest) {
			b := r.Imp[0].Banner
			if b.W != 300 || b.H != 250 || b.Format[0].W != 320 || b.Format[0].H != 50 || r.TMax != 120 {
				t.Errorf("banner %dx%d format %+v tmax %d", b.W, b.H, b.Format, r.TMax)
			}
		}},
		{"integers beyond int64 saturate", wrap(`"tmax":123456789012345678901234567890,"cattax":-1e30`), func(t *testing.T, r *BidRequest) {
			if r.TMax != math.MaxInt64 || r.CatTax != math.MinInt64 {
				t.Errorf("tmax %d cattax %d", r.TMax, r.CatTax)
			}
		}},
		{"19 digits keep every digit", wrap(`"tmax":1234567890123456789,"cattax":-9223372036854775808`), func(t *testing.T, r *BidRequest) {
			if r.TMax != 1234567890123456789 || r.CatTax != math.MinInt64 {
				t.Errorf("tmax %d cattax %d", r.TMax, r.CatTax)
			}
		}},
		{"pointer integers saturate", `{"id":"r","imp":[{"id":"1","secure":7e10,"video":{"mimes":[],"startdelay":-2,"skip":1}}]}`, func(t *testing.T, r *BidRequest) {
			imp := r.Imp[0]
			if *imp.Secure != math.MaxInt8 || *imp.Video.StartDelay != -2 || *imp.Video.Skip != 1 {
				t.Errorf("secure %d startdelay %d skip %d", *imp.Secure, *imp.Video.StartDelay, *imp.Video.Skip)
			}
		}},
		{"unknown gdpr value is unknown", wrap(`"regs":{"gdpr":500,"ext":{"gdpr":7}}`), func(t *testing.T, r *BidRequest) {
			if _, known := r.GDPRApplies(); known {
				t.Error("gdpr 500 read as known")
			}
		}},
		{"2.5 gdpr in ext behind other keys", wrap(`"regs":{"ext":{"us_privacy":"1YNN","x":{"gdpr":0},"gdpr":1}}`), func(t *testing.T, r *BidRequest) {
			if a, known := r.GDPRApplies(); !a || !known {
				t.Errorf("gdpr = %v/%v", a, known)
			}
		}},
		{"escapes", `{"id":"a\"b\\c\/d\b\f\n\r\t\u00e9\u20AC\ud83d\ude00","imp":[{"id":"1","banner":{}}]}`, func(t *testing.T, r *BidRequest) {
			if want := "a\"b\\c/d\b\f\n\r\té€😀"; r.ID != want {
				t.Errorf("id = %q, want %q", r.ID, want)
			}
		}},
		{"lone surrogates become U+FFFD", `{"id":"\ud800x\udc00","imp":[{"id":"1","banner":{}}]}`, func(t *testing.T, r *BidRequest) {
			if r.ID != "\uFFFDx\uFFFD" {
				t.Errorf("id = %q", r.ID)
			}
		}},
		{"raw UTF-8", `{"id":"é€😀","imp":[{"id":"1","banner":{}}],"site":{"name":"Zürich"}}`, func(t *testing.T, r *BidRequest) {
			if r.ID != "é€😀" || r.Site.Name != "Zürich" {
				t.Errorf("id %q name %q", r.ID, r.Site.Name)
			}
		}},
		{"escaped key", `{"\u0069d":"r1","imp":[{"id":"1","banner":{}}]}`, func(t *testing.T, r *BidRequest) {
			if r.ID != "r1" {
				t.Errorf("id = %q", r.ID)
			}
		}},
		{"keys are case-sensitive", wrap(`"ID":"other","Site":{}`), func(t *testing.T, r *BidRequest) {
			if r.ID != "r1" || r.Site != nil {
				t.Errorf("id %q site %v", r.ID, r.Site)
			}
		}},
		{"long keys", wrap(`"device":{"connectiontype":2,"connectiontypx":3},"site":{"content":{"sourcerelationship":1,"sourcerelationshiq":2}}`), func(t *testing.T, r *BidRequest) {
			if r.Device.ConnectionType != 2 || r.Site.Content.SourceRelationship != 1 {
				t.Errorf("connectiontype %d sourcerelationship %d", r.Device.ConnectionType, r.Site.Content.SourceRelationship)
			}
		}},
		{"null everywhere", `{"id":"r","imp":[{"id":"1","banner":{"format":null,"w":null},"pmp":null,"ext":null}],"site":null,"cur":null,"bcat":["a",null],"regs":{"gdpr":null}}`, func(t *testing.T, r *BidRequest) {
			imp := r.Imp[0]
			if imp.Banner == nil || imp.PMP != nil || r.Site != nil || r.Cur != nil || string(imp.Ext) != "null" || len(r.BCat) != 2 || r.Regs.GDPR != -1 {
				t.Errorf("%+v %+v", r, imp)
			}
		}},
		{"duplicate unknown keys and duplicates in ext are not checked", wrap(`"x":1,"x":2,"ext":{"a":1,"a":2}`), func(t *testing.T, r *BidRequest) {
			if string(r.Ext) != `{"a":1,"a":2}` {
				t.Errorf("ext %s", r.Ext)
			}
		}},
		{"the same key in sibling objects", `{"id":"r","imp":[{"id":"1","banner":{"w":1}},{"id":"2","banner":{"w":2}}],"site":{"id":"s","publisher":{"id":"p"}}}`, func(t *testing.T, r *BidRequest) {
			if r.Imp[1].Banner.W != 2 || r.Site.Publisher.ID != "p" {
				t.Errorf("%+v", r)
			}
		}},
		{"numbers as strings", `{"id":"r","imp":[{"id":"1","secure":"1","banner":{"w":"728","h":"90","btype":["1",3],"format":[{"w":"3e2","h":"250.0"}]},"bidfloor":"0.18"}],"site":{"content":{"context":"1"}},"tmax":"120"}`, func(t *testing.T, r *BidRequest) {
			imp := r.Imp[0]
			b := imp.Banner
			if *imp.Secure != 1 || b.W != 728 || b.H != 90 || b.Format[0].W != 300 || b.Format[0].H != 250 || len(b.BType) != 2 || b.BType[0] != 1 ||
				imp.BidFloor != 0.18 || r.Site.Content.Context != 1 || r.TMax != 120 {
				t.Errorf("imp %+v banner %+v context %d tmax %d", imp, b, r.Site.Content.Context, r.TMax)
			}
		}},
		{"empty strings for numbers are absent", `{"id":"r","imp":[{"id":"1","secure":"","banner":{"w":300,"wmax":"","hmax":""},"bidfloor":""}],"tmax":""}`, func(t *testing.T, r *BidRequest) {
			imp := r.Imp[0]
			if imp.Secure != nil || imp.Banner.WMax != 0 || imp.BidFloor != 0 || r.TMax != 0 {
				t.Errorf("imp %+v banner %+v tmax %d", imp, imp.Banner, r.TMax)
			}
		}},
		{"numeric ids keep every digit", `{"id":123456789012345678901234567890,"imp":[{"id":1,"tagid":-5,"banner":{}}],"site":{"id":9007199254740993,"publisher":{"id":1.5e3}},"user":{"buyeruid":42}}`, func(t *testing.T, r *BidRequest) {
			if r.ID != "123456789012345678901234567890" || r.Imp[0].ID != "1" || r.Imp[0].TagID != "-5" || r.Site.ID != "9007199254740993" || r.Site.Publisher.ID != "1.5e3" || r.User.BuyerUID != "42" {
				t.Errorf("ids %q %q %q %q %q %q", r.ID, r.Imp[0].ID, r.Imp[0].TagID, r.Site.ID, r.Site.Publisher.ID, r.User.BuyerUID)
			}
		}},
		{"keywords as an array", `{"id":"r","imp":[{"id":"1","banner":{}}],"user":{"keywords":["m_gender:m","a\u00e9",null,"b"]},"site":{"keywords":[],"publisher":{"id":"p"}},"device":{"ua":"k1,k2"}}`, func(t *testing.T, r *BidRequest) {
			if r.User.Keywords != "m_gender:m,aé,b" || r.Site.Keywords != "" || r.Site.Publisher.ID != "p" {
				t.Errorf("keywords %q %q %q", r.User.Keywords, r.Site.Keywords, r.Site.Publisher.ID)
			}
		}},
		{"video protocol as an array", `{"id":"r","imp":[{"id":"1","video":{"mimes":[],"protocols":[2],"protocol":[3,null,"7"]}},{"id":"2","video":{"mimes":[],"protocol":3}}]}`, func(t *testing.T, r *BidRequest) {
			v, w := r.Imp[0].Video, r.Imp[1].Video
			if !reflect.DeepEqual(v.Protocols, []int{2, 3, 7}) || v.Protocol != 0 || w.Protocol != 3 || len(w.Protocols) != 0 {
				t.Errorf("protocols %v / %d, %v / %d", v.Protocols, v.Protocol, w.Protocols, w.Protocol)
			}
		}},
		{"whitespace", " \t\n{ \"id\" : \"r\" ,\r\n\"imp\" : [ { \"id\" : \"1\" , \"banner\" : { } } ] } \n", func(t *testing.T, r *BidRequest) {
			if r.ID != "r" || r.Imp[0].Banner == nil {
				t.Errorf("%+v", r)
			}
		}},
		{"nesting up to the bound", wrap(`"ext":` + deep), func(t *testing.T, r *BidRequest) {
			if len(r.Ext) != len(deep) {
				t.Errorf("ext %d bytes", len(r.Ext))
			}
		}},
		{"raw values of every type", `{"id":"r","imp":[{"id":"1","native":{"request":"{\"ver\":\"1.2\"}"}},{"id":"2","native":{"request":{"ver":"1.2"}}}],"ext":[1,-2.5e-3,true,false,null,"s",{"a":[]}]}`, func(t *testing.T, r *BidRequest) {
			if string(r.Imp[0].Native.Request) != `"{\"ver\":\"1.2\"}"` || string(r.Imp[1].Native.Request) != `{"ver":"1.2"}` || string(r.Ext) != `[1,-2.5e-3,true,false,null,"s",{"a":[]}]` {
				t.Errorf("raw %s / %s / %s", r.Imp[0].Native.Request, r.Imp[1].Native.Request, r.Ext)
			}
			if cap(r.Ext) != len(r.Ext) {
				t.Error("an append to ext could overwrite the body")
			}
		}},
		{"null request", `null`, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var r BidRequest
			err := Decode([]byte(tc.body), &r)
			if tc.check == nil {
				if e := AsError(err); e == nil || e.Reason != ReasonMissingID {
					t.Fatalf("Decode = %v, want missing_id", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			tc.check(t, &r)
		})
	}
}

// A request over MaxImps is refused for its count without growing what it keeps with it.
func TestDecodeManyImps(t *testing.T) {
	body := `{"id":"r1","imp":[` + strings.Repeat(`{"id":"x","banner":{}},`, 999) + `{"id":"y","banner":{}}]}`
	var r BidRequest
	e := AsError(Decode([]byte(body), &r))
	if e == nil || e.Reason != ReasonTooManyImps || !strings.Contains(e.Msg, "has 1000 imps") {
		t.Fatalf("Decode = %v", e)
	}
	banners := r.mem.pools[plans[reflect.TypeFor[Banner]()].pool]
	if cap(r.Imp) > 2*(MaxImps+1) || len(banners) > MaxImps+1 {
		t.Errorf("kept %d imps and %d banners", cap(r.Imp), len(banners))
	}
	if err := Decode([]byte(minimal), &r); err != nil || len(r.Imp) != 1 {
		t.Fatalf("next decode: %v (%d imps)", err, len(r.Imp))
	}
}

// Every model type has a plan with a typed zeroer (reflect's SetZero is several times slower) and
// every field a kind.
func TestPlansComplete(t *testing.T) {
	for typ, p := range plans {
		if _, ok := zeroers[typ]; !ok {
			t.Errorf("%s has no zeroer: add it to zeroers", typ)
		}
		if len(p.fields) != countJSONFields(p) {
			t.Errorf("%s: %d fields planned", typ, len(p.fields))
		}
	}
	if len(plans) < 30 {
		t.Errorf("only %d plans", len(plans))
	}
}

func countJSONFields(p *plan) int {
	n := 0
	for i := 0; i < p.typ.NumField(); i++ {
		if f := p.typ.Field(i); f.IsExported() && f.Tag.Get("json") != "-" {
			n++
		}
	}
	return n
}

// Reused objects, slices and scalars of a pooled request start empty at every decode.
func TestDecodeReuseForgetsNested(t *testing.T) {
	first := `{"id":"a\u0041","imp":[{"id":"1","secure":1,"metric":[{"type":"viewability","value":0.8}],"banner":{"w":1,"h":1,"format":[{"w":1,"h":2},{"w":3,"h":4},{"w":5,"h":6}],"battr":[1,2]}},
{"id":"2","video":{"mimes":["video/mp4"],"skip":1,"durfloors":[{"bidfloor":1}]}}],
"site":{"id":"s","publisher":{"id":"p"},"content":{"data":[{"segment":[{"id":"x"}]}]}},"user":{"id":"u","data":[{"id":"d","segment":[{"id":"s1"},{"id":"s2"}]}],"eids":[{"source":"e","uids":[{"id":"i"}]}]},
"source":{"schain":{"complete":1,"nodes":[{"asi":"a","sid":"1","hp":1}]}}}`
	second := `{"id":"b","imp":[{"id":"9","banner":{"format":[{"w":7}]}},{"id":"8","video":{"mimes":[]}}],"site":{"domain":"d"},"user":{"data":[{"segment":[{}]}]}}`
	var r BidRequest
	if err := Decode([]byte(first), &r); err != nil {
		t.Fatal(err)
	}
	if r.ID != "aA" || *r.Imp[0].Secure != 1 || len(r.Imp[0].Banner.Format) != 3 || len(r.User.Data[0].Segment) != 2 {
		t.Fatalf("first request decoded as %+v", r)
	}
	if err := Decode([]byte(second), &r); err != nil {
		t.Fatal(err)
	}
	imp0, imp1 := r.Imp[0], r.Imp[1]
	if imp0.Secure != nil || len(imp0.Metric) != 0 || imp0.Banner.W != 0 || len(imp0.Banner.BAttr) != 0 {
		t.Errorf("imp 0 carried state: %+v banner %+v", imp0, imp0.Banner)
	}
	if f := imp0.Banner.Format; len(f) != 1 || f[0].W != 7 || f[0].H != 0 {
		t.Errorf("format = %+v", f)
	}
	if v := imp1.Video; v.Skip != nil || len(v.DurFloors) != 0 || len(v.MIMEs) != 0 {
		t.Errorf("video carried state: %+v", v)
	}
	if s := r.Site; s.ID != "" || s.Publisher.ID != "" || len(s.Content.Data) != 0 || s.Domain != "d" {
		t.Errorf("site carried state: %+v", s)
	}
	if u := r.User; u.ID != "" || len(u.EIDs) != 0 || len(u.Data) != 1 || u.Data[0].ID != "" || len(u.Data[0].Segment) != 1 || u.Data[0].Segment[0].ID != "" {
		t.Errorf("user carried state: %+v", u)
	}
	if r.Source.SChain != nil {
		t.Errorf("schain carried over: %+v", r.Source.SChain)
	}
}

// What one request's decode hands out belongs to that request: decoding another request (with the
// same Decoder) leaves it alone.
func TestDecodeRequestsIndependent(t *testing.T) {
	var d Decoder
	var a, b BidRequest
	if err := d.Decode([]byte(`{"id":"\u0061","imp":[{"id":"1","secure":1,"banner":{"w":1}}],"site":{"id":"s"}}`), &a); err != nil {
		t.Fatal(err)
	}
	if err := d.Decode([]byte(`{"id":"\u0062","imp":[{"id":"2","secure":0,"banner":{"w":2}}],"site":{"id":"t"}}`), &b); err != nil {
		t.Fatal(err)
	}
	if a.ID != "a" || *a.Imp[0].Secure != 1 || a.Imp[0].Banner.W != 1 || a.Site.ID != "s" || a.Site == b.Site || a.Imp[0].Banner == b.Imp[0].Banner {
		t.Errorf("a changed by decoding b: %+v", a)
	}
}

// A field of the model named twice in one object is refused: which of the two a reader takes is
// up to each decoder, so the exchange and the bidder could act on different floors, ids or imps.
func TestDecodeRefusesDuplicateKeys(t *testing.T) {
	tests := []struct{ name, body, key string }{
		{"request id", `{"id":"a","id":"b","imp":[{"id":"1","banner":{}}]}`, "id"},
		{"imp list", `{"id":"r","imp":[{"id":"x","banner":{}}],"imp":[{"id":"1","banner":{}}]}`, "imp"},
		{"floor", `{"id":"r","imp":[{"id":"1","banner":{},"bidfloor":5,"bidfloor":0.01}]}`, "bidfloor"},
		{"escaped spelling", `{"id":"r","imp":[{"id":"1","banner":{}}],"bcat":["IAB25"],"b\u0063at":[]}`, "bcat"},
		{"deep", `{"id":"r","imp":[{"id":"1","banner":{}}],"site":{"publisher":{"id":"p","id":"q"}}}`, "id"},
		{"null then value", `{"id":"r","imp":[{"id":"1","banner":{}}],"site":null,"site":{}}`, "site"},
		{"native request", `{"id":"r","imp":[{"id":"1","native":{"request":"{}","request":"{}"}}]}`, "request"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := AsError(Decode([]byte(tc.body), new(BidRequest)))
			if e == nil || e.Reason != ReasonDuplicateKey || !strings.Contains(e.Msg, `duplicate key "`+tc.key+`"`) {
				t.Fatalf("Decode(%s) = %v, want a duplicate_key refusal naming %q", tc.body, e, tc.key)
			}
		})
	}
	var n NativeRequest
	if err := ParseNativeRequest([]byte(`{"ver":"1.2","ver":"1.1","assets":[]}`), &n); err == nil || !strings.Contains(err.Error(), "duplicate key") {
		t.Errorf("native request with a duplicate key: %v", err)
	}
}
