package openrtb

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"unsafe"
)

// NativeRequest is the Native Ads 1.x request document carried in imp.native.request.
type NativeRequest struct {
	Ver       string        `json:"ver,omitempty"`
	PlcmtType int8          `json:"plcmttype,omitempty"`
	Assets    []NativeAsset `json:"assets"`

	mem *arena
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
// string but exchanges also send as an object, and Native 1.0 wraps in {"native": …}. dst is reset
// first; like a BidRequest, it reuses what its last parse handed out, and its strings alias raw or
// memory dst keeps until its next parse.
func ParseNativeRequest(raw json.RawMessage, dst *NativeRequest) error {
	mem := dst.mem
	nativePlan.reset(unsafe.Pointer(dst))
	if mem == nil {
		mem = newArena()
	}
	mem.reset()
	dst.mem = mem
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return errors.New("native request is empty")
	}
	if raw[0] == '"' {
		s := scanner{b: raw, a: mem}
		str, err := s.str()
		if err == nil {
			s.ws()
			if s.i < len(s.b) {
				err = s.syntax("invalid char")
			}
		}
		if err != nil {
			return fmt.Errorf("native request string: %w", err)
		}
		if str == "" {
			return errors.New("native request is empty")
		}
		// Escapes inside the document unescape into mem past the string itself, so it stays intact.
		raw = unsafe.Slice(unsafe.StringData(str), len(str))
	}
	s := scanner{b: raw, a: mem}
	if err := s.nativeDocument(dst); err != nil {
		return fmt.Errorf("native request: %w", err)
	}
	return nil
}

// nativeDocument decodes a native request document into dst: the object itself (1.1, 1.2) or, when
// it has a "native" object (1.0), that object alone.
func (s *scanner) nativeDocument(dst *NativeRequest) error {
	s.ws()
	if s.peek() != '{' {
		return s.wrongType("object", 1)
	}
	start := s.i
	wrapped := false
	// A first pass looks for the wrapper without decoding anything.
	s.i++
	s.ws()
	for s.peek() == '"' {
		k, _, err := s.key()
		if err != nil {
			return err
		}
		if err := s.colon(); err != nil {
			return err
		}
		if string(k) == "native" && s.peek() == '{' {
			wrapped = true
			if err := s.object(nativePlan, unsafe.Pointer(dst), 2); err != nil {
				return err
			}
		} else if err := s.skip(1); err != nil {
			return err
		}
		s.ws()
		if s.peek() != ',' {
			break
		}
		s.i++
		s.ws()
	}
	if s.peek() != '}' {
		return s.syntax("invalid char")
	}
	s.i++
	if !wrapped {
		s.i = start
		if err := s.object(nativePlan, unsafe.Pointer(dst), 1); err != nil {
			return err
		}
	}
	s.ws()
	if s.i < len(s.b) {
		return s.syntax("invalid char")
	}
	return nil
}
