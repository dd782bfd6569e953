package openrtb

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
)

// NativeRequest is the Native Ads 1.x request document carried in imp.native.request.
type NativeRequest struct {
	Ver       string        `json:"ver,omitempty"`
	PlcmtType int8          `json:"plcmttype,omitempty"`
	Assets    []NativeAsset `json:"assets"`
}

// NativeAsset is one asset the placement asks for: exactly one of Title, Img, Data, Video is set.
type NativeAsset struct {
	ID       int64        `json:"id"`
	Required int8         `json:"required,omitempty"`
	Title    *NativeTitle `json:"title,omitempty"`
	Img      *NativeImage `json:"img,omitempty"`
	Data     *NativeData  `json:"data,omitempty"`
	Video    *struct{}    `json:"video,omitempty"`
}

// NativeTitle asks for a title of at most Len characters.
type NativeTitle struct {
	Len int64 `json:"len"`
}

// NativeImage asks for an image: Type 1 icon, 3 main image.
type NativeImage struct {
	Type int8  `json:"type,omitempty"`
	W    int64 `json:"w,omitempty"`
	H    int64 `json:"h,omitempty"`
	WMin int64 `json:"wmin,omitempty"`
	HMin int64 `json:"hmin,omitempty"`
}

// NativeData asks for a data asset: Type 1 sponsored-by, 2 description, 12 call to action.
type NativeData struct {
	Type int8  `json:"type"`
	Len  int64 `json:"len,omitempty"`
}

// Native image and data asset types the bidder can fill (Native 1.2 §7.4, §7.3).
const (
	NativeImgIcon     = 1
	NativeImgMain     = 3
	NativeDataSponsor = 1
	NativeDataDesc    = 2
	NativeDataCTA     = 12
)

// ParseNativeRequest reads imp.native.request, which the specification defines as a JSON-encoded
// string but exchanges also send as an object, and Native 1.0 wraps in {"native": …}.
func ParseNativeRequest(raw json.RawMessage, dst *NativeRequest) error {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return errors.New("native request is empty")
	}
	if raw[0] == '"' {
		s, err := strconv.Unquote(string(raw))
		if err != nil {
			var str string
			if err := api.Unmarshal(raw, &str); err != nil {
				return fmt.Errorf("native request string: %w", err)
			}
			s = str
		}
		raw = []byte(s)
	}
	var wrapped struct {
		Native *NativeRequest `json:"native"`
	}
	if err := api.Unmarshal(raw, &wrapped); err == nil && wrapped.Native != nil {
		*dst = *wrapped.Native
		return nil
	}
	if err := api.Unmarshal(raw, dst); err != nil {
		return fmt.Errorf("native request: %s", oneLine(err.Error(), 120))
	}
	return nil
}
