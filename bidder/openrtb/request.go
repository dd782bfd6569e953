// Package openrtb is rtb's own model of the OpenRTB 2.5/2.6 bid request and response, written from the
// IAB specification (no OpenRTB library resolves on our build machines), with decoding, validation and
// allocation-free response encoding.
//
// The model is lean on purpose: it carries the fields a bidder decides on, and keeps every `ext` raw so
// nothing an exchange sends is lost. Objects whose presence changes the meaning of a request (site vs
// app vs dooh, the media objects of an imp, pmp) are pointers; objects that only carry information
// (device, geo, user, regs, publisher) are values, so that a missing object is simply an empty one.
// The objects behind the pointers belong to the request and are reused by its next decode, so that
// decoding allocates nothing once a pooled request has grown to the traffic.
package openrtb

import "encoding/json"

// BidRequest is the top-level OpenRTB bid request (2.5 §3.2.1, 2.6 §3.2.1).
type BidRequest struct {
	ID     string          `json:"id"`
	Imp    []Imp           `json:"imp"`
	Site   *Site           `json:"site,omitempty"`
	App    *App            `json:"app,omitempty"`
	DOOH   *DOOH           `json:"dooh,omitempty"`
	Device Device          `json:"device"`
	User   User            `json:"user"`
	Test   int8            `json:"test,omitempty"`
	AT     int8            `json:"at,omitempty"` // 1 first price, 2 second price plus (the default when absent)
	TMax   int64           `json:"tmax,omitempty"`
	WSeat  []string        `json:"wseat,omitempty"`
	BSeat  []string        `json:"bseat,omitempty"`
	AllImp int8            `json:"allimps,omitempty"`
	Cur    []string        `json:"cur,omitempty"`
	WLang  []string        `json:"wlang,omitempty"`
	BCat   []string        `json:"bcat,omitempty"`
	CatTax int             `json:"cattax,omitempty"`
	BAdv   []string        `json:"badv,omitempty"`
	BApp   []string        `json:"bapp,omitempty"`
	Source Source          `json:"source"`
	Regs   Regs            `json:"regs"`
	Ext    json.RawMessage `json:"ext,omitempty"`

	mem *arena // what decoding into this request reuses; copies share it, so decode into one only
}

// Imp is one impression on offer (§3.2.4).
type Imp struct {
	ID                string          `json:"id"`
	Metric            []Metric        `json:"metric,omitempty"`
	Banner            *Banner         `json:"banner,omitempty"`
	Video             *Video          `json:"video,omitempty"`
	Audio             *Audio          `json:"audio,omitempty"`
	Native            *Native         `json:"native,omitempty"`
	PMP               *PMP            `json:"pmp,omitempty"`
	DisplayManager    string          `json:"displaymanager,omitempty"`
	DisplayManagerVer string          `json:"displaymanagerver,omitempty"`
	Instl             int8            `json:"instl,omitempty"`
	TagID             string          `json:"tagid,omitempty"`
	BidFloor          float64         `json:"bidfloor,omitempty"`
	BidFloorCur       string          `json:"bidfloorcur,omitempty"`
	ClickBrowser      int8            `json:"clickbrowser,omitempty"`
	Secure            *int8           `json:"secure,omitempty"`
	IframeBuster      []string        `json:"iframebuster,omitempty"`
	Rwdd              int8            `json:"rwdd,omitempty"`
	SSAI              int8            `json:"ssai,omitempty"`
	Exp               int64           `json:"exp,omitempty"`
	Ext               json.RawMessage `json:"ext,omitempty"`
}

// Metric is an exchange-supplied metric such as viewability (§3.2.5).
type Metric struct {
	Type   string          `json:"type"`
	Value  float64         `json:"value"`
	Vendor string          `json:"vendor,omitempty"`
	Ext    json.RawMessage `json:"ext,omitempty"`
}

// Format is one allowed banner size (§3.2.10).
type Format struct {
	W      int64           `json:"w,omitempty"`
	H      int64           `json:"h,omitempty"`
	WRatio int64           `json:"wratio,omitempty"`
	HRatio int64           `json:"hratio,omitempty"`
	WMin   int64           `json:"wmin,omitempty"`
	Ext    json.RawMessage `json:"ext,omitempty"`
}

// Banner is a display placement (§3.2.6).
type Banner struct {
	Format   []Format        `json:"format,omitempty"`
	W        int64           `json:"w,omitempty"`
	H        int64           `json:"h,omitempty"`
	WMax     int64           `json:"wmax,omitempty"`
	HMax     int64           `json:"hmax,omitempty"`
	WMin     int64           `json:"wmin,omitempty"`
	HMin     int64           `json:"hmin,omitempty"`
	BType    []int           `json:"btype,omitempty"`
	BAttr    []int           `json:"battr,omitempty"`
	Pos      int8            `json:"pos,omitempty"`
	MIMEs    []string        `json:"mimes,omitempty"`
	TopFrame int8            `json:"topframe,omitempty"`
	ExpDir   []int           `json:"expdir,omitempty"`
	API      []int           `json:"api,omitempty"`
	ID       string          `json:"id,omitempty"`
	VCM      int8            `json:"vcm,omitempty"`
	Ext      json.RawMessage `json:"ext,omitempty"`
}

// Video is a video placement (§3.2.7), including the 2.6 pod and placement fields.
type Video struct {
	MIMEs          []string        `json:"mimes"`
	MinDuration    int64           `json:"minduration,omitempty"`
	MaxDuration    int64           `json:"maxduration,omitempty"`
	StartDelay     *int64          `json:"startdelay,omitempty"`
	MaxSeq         int64           `json:"maxseq,omitempty"`
	PodDur         int64           `json:"poddur,omitempty"`
	Protocols      []int           `json:"protocols,omitempty"`
	Protocol       int             `json:"protocol,omitempty"` // 2.2 single protocol, still sent by some exchanges
	W              int64           `json:"w,omitempty"`
	H              int64           `json:"h,omitempty"`
	PodID          string          `json:"podid,omitempty"`
	PodSeq         int8            `json:"podseq,omitempty"`
	RqdDurs        []int64         `json:"rqddurs,omitempty"`
	Placement      int8            `json:"placement,omitempty"`
	Plcmt          int8            `json:"plcmt,omitempty"`
	Linearity      int8            `json:"linearity,omitempty"`
	Skip           *int8           `json:"skip,omitempty"`
	SkipMin        int64           `json:"skipmin,omitempty"`
	SkipAfter      int64           `json:"skipafter,omitempty"`
	Sequence       int64           `json:"sequence,omitempty"`
	SlotInPod      int8            `json:"slotinpod,omitempty"`
	MinCPMPerSec   float64         `json:"mincpmpersec,omitempty"`
	BAttr          []int           `json:"battr,omitempty"`
	MaxExtended    int64           `json:"maxextended,omitempty"`
	MinBitrate     int64           `json:"minbitrate,omitempty"`
	MaxBitrate     int64           `json:"maxbitrate,omitempty"`
	BoxingAllowed  *int8           `json:"boxingallowed,omitempty"`
	PlaybackMethod []int           `json:"playbackmethod,omitempty"`
	PlaybackEnd    int8            `json:"playbackend,omitempty"`
	Delivery       []int           `json:"delivery,omitempty"`
	Pos            int8            `json:"pos,omitempty"`
	CompanionAd    []Banner        `json:"companionad,omitempty"`
	API            []int           `json:"api,omitempty"`
	CompanionType  []int           `json:"companiontype,omitempty"`
	PodDedupe      []int           `json:"poddedupe,omitempty"`
	DurFloors      []DurFloor      `json:"durfloors,omitempty"`
	Ext            json.RawMessage `json:"ext,omitempty"`
}

// DurFloor is a floor for creatives of a duration range (2.6 §3.2.35): where present, buyers price
// against the range their creative falls in rather than imp.bidfloor.
type DurFloor struct {
	MinDur   int64           `json:"mindur,omitempty"`
	MaxDur   int64           `json:"maxdur,omitempty"`
	BidFloor float64         `json:"bidfloor,omitempty"`
	Ext      json.RawMessage `json:"ext,omitempty"`
}

// FloorFor returns the duration floor that applies to a creative of dur seconds, if any.
func (v *Video) FloorFor(dur int64) (float64, bool) {
	for i := range v.DurFloors {
		f := &v.DurFloors[i]
		if (f.MinDur == 0 || dur >= f.MinDur) && (f.MaxDur == 0 || dur <= f.MaxDur) {
			return f.BidFloor, true
		}
	}
	return 0, false
}

// Audio is an audio placement (§3.2.8).
type Audio struct {
	MIMEs         []string        `json:"mimes"`
	MinDuration   int64           `json:"minduration,omitempty"`
	MaxDuration   int64           `json:"maxduration,omitempty"`
	PodDur        int64           `json:"poddur,omitempty"`
	Protocols     []int           `json:"protocols,omitempty"`
	StartDelay    *int64          `json:"startdelay,omitempty"`
	RqdDurs       []int64         `json:"rqddurs,omitempty"`
	PodID         string          `json:"podid,omitempty"`
	PodSeq        int8            `json:"podseq,omitempty"`
	Sequence      int64           `json:"sequence,omitempty"`
	SlotInPod     int8            `json:"slotinpod,omitempty"`
	MinCPMPerSec  float64         `json:"mincpmpersec,omitempty"`
	BAttr         []int           `json:"battr,omitempty"`
	MaxExtended   int64           `json:"maxextended,omitempty"`
	MinBitrate    int64           `json:"minbitrate,omitempty"`
	MaxBitrate    int64           `json:"maxbitrate,omitempty"`
	Delivery      []int           `json:"delivery,omitempty"`
	CompanionAd   []Banner        `json:"companionad,omitempty"`
	API           []int           `json:"api,omitempty"`
	CompanionType []int           `json:"companiontype,omitempty"`
	MaxSeq        int64           `json:"maxseq,omitempty"`
	Feed          int8            `json:"feed,omitempty"`
	Stitched      int8            `json:"stitched,omitempty"`
	NVol          int8            `json:"nvol,omitempty"`
	Ext           json.RawMessage `json:"ext,omitempty"`
}

// Native is a native placement (§3.2.9). Request is the Native Ads request document, which exchanges
// send either as a JSON-encoded string (as the specification says) or, in practice, as an object; both
// are kept raw here and read by NativeRequest.
type Native struct {
	Request json.RawMessage `json:"request"`
	Ver     string          `json:"ver,omitempty"`
	API     []int           `json:"api,omitempty"`
	BAttr   []int           `json:"battr,omitempty"`
	Ext     json.RawMessage `json:"ext,omitempty"`
}

// PMP is the private marketplace container of an imp (§3.2.11).
type PMP struct {
	PrivateAuction int8            `json:"private_auction,omitempty"`
	Deals          []Deal          `json:"deals,omitempty"`
	Ext            json.RawMessage `json:"ext,omitempty"`
}

// Deal is one direct deal between buyer and seller (§3.2.12).
type Deal struct {
	ID          string          `json:"id"`
	BidFloor    float64         `json:"bidfloor,omitempty"`
	BidFloorCur string          `json:"bidfloorcur,omitempty"`
	AT          int8            `json:"at,omitempty"`
	WSeat       []string        `json:"wseat,omitempty"`
	WADomain    []string        `json:"wadomain,omitempty"`
	Ext         json.RawMessage `json:"ext,omitempty"`
}

// Site describes a website (§3.2.13).
type Site struct {
	ID            string          `json:"id,omitempty"`
	Name          string          `json:"name,omitempty"`
	Domain        string          `json:"domain,omitempty"`
	CatTax        int             `json:"cattax,omitempty"`
	Cat           []string        `json:"cat,omitempty"`
	SectionCat    []string        `json:"sectioncat,omitempty"`
	PageCat       []string        `json:"pagecat,omitempty"`
	Page          string          `json:"page,omitempty"`
	Ref           string          `json:"ref,omitempty"`
	Search        string          `json:"search,omitempty"`
	Mobile        int8            `json:"mobile,omitempty"`
	PrivacyPolicy int8            `json:"privacypolicy,omitempty"`
	Publisher     Publisher       `json:"publisher"`
	Content       Content         `json:"content"`
	Keywords      string          `json:"keywords,omitempty"`
	Ext           json.RawMessage `json:"ext,omitempty"`
}

// App describes a mobile or CTV application (§3.2.14).
type App struct {
	ID            string          `json:"id,omitempty"`
	Name          string          `json:"name,omitempty"`
	Bundle        string          `json:"bundle,omitempty"`
	Domain        string          `json:"domain,omitempty"`
	StoreURL      string          `json:"storeurl,omitempty"`
	CatTax        int             `json:"cattax,omitempty"`
	Cat           []string        `json:"cat,omitempty"`
	SectionCat    []string        `json:"sectioncat,omitempty"`
	PageCat       []string        `json:"pagecat,omitempty"`
	Ver           string          `json:"ver,omitempty"`
	PrivacyPolicy int8            `json:"privacypolicy,omitempty"`
	Paid          int8            `json:"paid,omitempty"`
	Publisher     Publisher       `json:"publisher"`
	Content       Content         `json:"content"`
	Keywords      string          `json:"keywords,omitempty"`
	Ext           json.RawMessage `json:"ext,omitempty"`
}

// DOOH describes a digital out-of-home venue (2.6 §3.2.23).
type DOOH struct {
	ID           string          `json:"id,omitempty"`
	Name         string          `json:"name,omitempty"`
	VenueType    []string        `json:"venuetype,omitempty"`
	VenueTypeTax int             `json:"venuetypetax,omitempty"`
	Publisher    Publisher       `json:"publisher"`
	Domain       string          `json:"domain,omitempty"`
	Keywords     string          `json:"keywords,omitempty"`
	Content      Content         `json:"content"`
	Ext          json.RawMessage `json:"ext,omitempty"`
}

// Publisher is the seller of the inventory (§3.2.15).
type Publisher struct {
	ID     string          `json:"id,omitempty"`
	Name   string          `json:"name,omitempty"`
	CatTax int             `json:"cattax,omitempty"`
	Cat    []string        `json:"cat,omitempty"`
	Domain string          `json:"domain,omitempty"`
	Ext    json.RawMessage `json:"ext,omitempty"`
}

// Content describes the content around the ad (§3.2.16); kept small: what targeting and brand
// safety look at, the rest stays in Ext.
type Content struct {
	ID                 string          `json:"id,omitempty"`
	Episode            int64           `json:"episode,omitempty"`
	Title              string          `json:"title,omitempty"`
	Series             string          `json:"series,omitempty"`
	Season             string          `json:"season,omitempty"`
	Genre              string          `json:"genre,omitempty"`
	URL                string          `json:"url,omitempty"`
	CatTax             int             `json:"cattax,omitempty"`
	Cat                []string        `json:"cat,omitempty"`
	ProdQ              int8            `json:"prodq,omitempty"`
	Context            int8            `json:"context,omitempty"`
	ContentRating      string          `json:"contentrating,omitempty"`
	LiveStream         int8            `json:"livestream,omitempty"`
	Len                int64           `json:"len,omitempty"`
	Language           string          `json:"language,omitempty"`
	LangB              string          `json:"langb,omitempty"`
	Embeddable         int8            `json:"embeddable,omitempty"`
	Producer           json.RawMessage `json:"producer,omitempty"`
	Network            json.RawMessage `json:"network,omitempty"`
	Channel            json.RawMessage `json:"channel,omitempty"`
	Data               []Data          `json:"data,omitempty"`
	SourceRelationship int8            `json:"sourcerelationship,omitempty"`
	Ext                json.RawMessage `json:"ext,omitempty"`
}

// Device describes the user's device (§3.2.18).
type Device struct {
	UA             string          `json:"ua,omitempty"`
	SUA            json.RawMessage `json:"sua,omitempty"`
	Geo            Geo             `json:"geo"`
	DNT            *int8           `json:"dnt,omitempty"`
	LMT            *int8           `json:"lmt,omitempty"`
	IP             string          `json:"ip,omitempty"`
	IPv6           string          `json:"ipv6,omitempty"`
	DeviceType     int8            `json:"devicetype,omitempty"`
	Make           string          `json:"make,omitempty"`
	Model          string          `json:"model,omitempty"`
	OS             string          `json:"os,omitempty"`
	OSV            string          `json:"osv,omitempty"`
	HWV            string          `json:"hwv,omitempty"`
	H              int64           `json:"h,omitempty"`
	W              int64           `json:"w,omitempty"`
	PPI            int64           `json:"ppi,omitempty"`
	PxRatio        float64         `json:"pxratio,omitempty"`
	JS             int8            `json:"js,omitempty"`
	GeoFetch       int8            `json:"geofetch,omitempty"`
	FlashVer       string          `json:"flashver,omitempty"`
	Language       string          `json:"language,omitempty"`
	LangB          string          `json:"langb,omitempty"`
	Carrier        string          `json:"carrier,omitempty"`
	MCCMNC         string          `json:"mccmnc,omitempty"`
	ConnectionType int8            `json:"connectiontype,omitempty"`
	IFA            string          `json:"ifa,omitempty"`
	DIDSHA1        string          `json:"didsha1,omitempty"`
	DIDMD5         string          `json:"didmd5,omitempty"`
	DPIDSHA1       string          `json:"dpidsha1,omitempty"`
	DPIDMD5        string          `json:"dpidmd5,omitempty"`
	MACSHA1        string          `json:"macsha1,omitempty"`
	MACMD5         string          `json:"macmd5,omitempty"`
	Ext            json.RawMessage `json:"ext,omitempty"`
}

// Geo is a location (§3.2.19). Country is ISO-3166-1 alpha-3, region ISO-3166-2.
type Geo struct {
	Lat           float64         `json:"lat,omitempty"`
	Lon           float64         `json:"lon,omitempty"`
	Type          int8            `json:"type,omitempty"`
	Accuracy      int64           `json:"accuracy,omitempty"`
	LastFix       int64           `json:"lastfix,omitempty"`
	IPService     int8            `json:"ipservice,omitempty"`
	Country       string          `json:"country,omitempty"`
	Region        string          `json:"region,omitempty"`
	RegionFIPS104 string          `json:"regionfips104,omitempty"`
	Metro         string          `json:"metro,omitempty"`
	City          string          `json:"city,omitempty"`
	ZIP           string          `json:"zip,omitempty"`
	UTCOffset     int64           `json:"utcoffset,omitempty"`
	Ext           json.RawMessage `json:"ext,omitempty"`
}

// User is the human behind the device (§3.2.20).
type User struct {
	ID         string          `json:"id,omitempty"`
	BuyerUID   string          `json:"buyeruid,omitempty"`
	YOB        int64           `json:"yob,omitempty"`
	Gender     string          `json:"gender,omitempty"`
	Keywords   string          `json:"keywords,omitempty"`
	CustomData string          `json:"customdata,omitempty"`
	Geo        Geo             `json:"geo"`
	Data       []Data          `json:"data,omitempty"`
	Consent    string          `json:"consent,omitempty"`
	EIDs       []EID           `json:"eids,omitempty"`
	Ext        json.RawMessage `json:"ext,omitempty"`
}

// Data is a block of third-party data about the user or content (§3.2.21).
type Data struct {
	ID      string          `json:"id,omitempty"`
	Name    string          `json:"name,omitempty"`
	Segment []Segment       `json:"segment,omitempty"`
	Ext     json.RawMessage `json:"ext,omitempty"`
}

// Segment is one data segment (§3.2.22).
type Segment struct {
	ID    string          `json:"id,omitempty"`
	Name  string          `json:"name,omitempty"`
	Value string          `json:"value,omitempty"`
	Ext   json.RawMessage `json:"ext,omitempty"`
}

// EID is an extended identifier (2.6 §3.2.27).
type EID struct {
	Inserter string          `json:"inserter,omitempty"`
	Source   string          `json:"source"`
	Matcher  string          `json:"matcher,omitempty"`
	MM       int8            `json:"mm,omitempty"`
	UIDs     []UID           `json:"uids,omitempty"`
	Ext      json.RawMessage `json:"ext,omitempty"`
}

// UID is one identifier within an EID (2.6 §3.2.28).
type UID struct {
	ID    string          `json:"id"`
	AType int8            `json:"atype,omitempty"`
	Ext   json.RawMessage `json:"ext,omitempty"`
}

// Source carries upstream decision facts, above all the supply chain (§3.2.2, 2.6 moves schain here).
type Source struct {
	FD     int8            `json:"fd,omitempty"`
	TID    string          `json:"tid,omitempty"`
	PChain string          `json:"pchain,omitempty"`
	SChain *SupplyChain    `json:"schain,omitempty"`
	Ext    json.RawMessage `json:"ext,omitempty"`
}

// SupplyChain is the SupplyChain object (2.6 §3.2.25).
type SupplyChain struct {
	Complete int8              `json:"complete"`
	Nodes    []SupplyChainNode `json:"nodes"`
	Ver      string            `json:"ver"`
	Ext      json.RawMessage   `json:"ext,omitempty"`
}

// SupplyChainNode is one hop of a supply chain (2.6 §3.2.26).
type SupplyChainNode struct {
	ASI    string          `json:"asi"`
	SID    string          `json:"sid"`
	RID    string          `json:"rid,omitempty"`
	Name   string          `json:"name,omitempty"`
	Domain string          `json:"domain,omitempty"`
	HP     int8            `json:"hp"`
	Ext    json.RawMessage `json:"ext,omitempty"`
}

// Regs carries legal regimes (§3.2.3). GDPR is -1 when the request does not say (2.6 regs.gdpr, or
// 2.5 regs.ext.gdpr read by Regulations).
type Regs struct {
	COPPA     int8            `json:"coppa,omitempty"`
	GDPR      int8            `json:"gdpr"`
	USPrivacy string          `json:"us_privacy,omitempty"`
	GPP       string          `json:"gpp,omitempty"`
	GPPSID    []int           `json:"gpp_sid,omitempty"`
	Ext       json.RawMessage `json:"ext,omitempty"`
}
