package pacing

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/bytedance/sonic"
)

// wireState is a State as it travels on rtb.pacing (JSON, key = campaign id). Times keep their zone
// offset so that a reader can tell the campaign's day; money is integer micros.
type wireState struct {
	V              int       `json:"v"`
	CampaignID     string    `json:"campaign_id"`
	Day            time.Time `json:"day"`
	UpdatedAt      time.Time `json:"updated_at"`
	ValidUntil     time.Time `json:"valid_until"`
	Throttle       float64   `json:"throttle"`
	Multiplier     float64   `json:"multiplier"`
	DailyBudget    int64     `json:"daily_budget_micros"`
	SpentToday     int64     `json:"spent_today_micros"`
	TargetToday    int64     `json:"target_today_micros"`
	ProjectedToday int64     `json:"projected_today_micros"`
	SpentTotal     int64     `json:"spent_total_micros"`
	TotalBudget    int64     `json:"total_budget_micros"`
	Status         string    `json:"status"`
}

const wireVersion = 1

// EncodeState is the rtb.pacing message value of s.
func EncodeState(s State) []byte {
	b, _ := sonic.ConfigStd.Marshal(wireState{wireVersion, s.CampaignID, s.Day, s.UpdatedAt, s.ValidUntil, s.Throttle,
		s.Multiplier, s.DailyBudget, s.SpentToday, s.TargetToday, s.ProjectedToday, s.SpentTotal, s.TotalBudget, s.Status})
	return b
}

// DecodeState reads an rtb.pacing message value.
func DecodeState(b []byte) (State, error) {
	var w wireState
	// Every bidder decodes every campaign's state every interval: sonic, not encoding/json, which
	// took most of a bidder's background CPU with 10,000 campaigns.
	if err := sonic.ConfigStd.Unmarshal(b, &w); err != nil {
		return State{}, fmt.Errorf("decode pacing state: %w", err)
	}
	if w.V != wireVersion {
		return State{}, fmt.Errorf("pacing state v=%d: this build reads v=%d", w.V, wireVersion)
	}
	if w.CampaignID == "" {
		return State{}, fmt.Errorf("pacing state without campaign_id")
	}
	return State{CampaignID: w.CampaignID, Day: w.Day, UpdatedAt: w.UpdatedAt, ValidUntil: w.ValidUntil,
		Throttle: w.Throttle, Multiplier: w.Multiplier, DailyBudget: w.DailyBudget, SpentToday: w.SpentToday,
		TargetToday: w.TargetToday, ProjectedToday: w.ProjectedToday, SpentTotal: w.SpentTotal,
		TotalBudget: w.TotalBudget, Status: w.Status}, nil
}

// Heartbeat is a pacer's word, every interval, that the states it last published for the campaigns
// of one partition of the event topics (events.PartitionOf of the campaign id, over Partitions) are
// still current, until ValidUntil. A pacer publishes a campaign's state only when it changes what
// bidders do (or its spend moved, now and then): without heartbeats a quiet campaign's state would
// have to be re-sent before its own validity ran out, and every bidder would decode every
// campaign's state every few seconds, work that grows with the number of campaigns when nothing
// happens. Heartbeats travel on rtb.pacing under keys HeartbeatKey(partition), which no campaign
// id can take (ids are [A-Za-z0-9._-]).
type Heartbeat struct {
	Partition  int
	Partitions int
	UpdatedAt  time.Time
	ValidUntil time.Time
}

type wireHeartbeat struct {
	V          int       `json:"v"`
	Partition  int       `json:"partition"`
	Partitions int       `json:"partitions"`
	UpdatedAt  time.Time `json:"updated_at"`
	ValidUntil time.Time `json:"valid_until"`
}

// heartbeatPrefix starts the rtb.pacing keys of heartbeats.
const heartbeatPrefix = "~heartbeat/"

// HeartbeatKey is the rtb.pacing key of partition p's heartbeat: compaction keeps the latest one.
func HeartbeatKey(p int) string { return heartbeatPrefix + strconv.Itoa(p) }

// IsHeartbeatKey reports whether an rtb.pacing key is a heartbeat's rather than a campaign's.
func IsHeartbeatKey(key string) bool { return strings.HasPrefix(key, heartbeatPrefix) }

// EncodeHeartbeat is the rtb.pacing message value of h.
func EncodeHeartbeat(h Heartbeat) []byte {
	b, _ := sonic.ConfigStd.Marshal(wireHeartbeat{wireVersion, h.Partition, h.Partitions, h.UpdatedAt, h.ValidUntil})
	return b
}

// DecodeHeartbeat reads a heartbeat's message value.
func DecodeHeartbeat(b []byte) (Heartbeat, error) {
	var w wireHeartbeat
	if err := sonic.ConfigStd.Unmarshal(b, &w); err != nil {
		return Heartbeat{}, fmt.Errorf("decode pacing heartbeat: %w", err)
	}
	if w.V != wireVersion {
		return Heartbeat{}, fmt.Errorf("pacing heartbeat v=%d: this build reads v=%d", w.V, wireVersion)
	}
	if w.Partitions <= 0 || w.Partition < 0 || w.Partition >= w.Partitions || w.ValidUntil.IsZero() {
		return Heartbeat{}, fmt.Errorf("pacing heartbeat of partition %d of %d valid until %s: out of range",
			w.Partition, w.Partitions, w.ValidUntil.Format(time.RFC3339))
	}
	return Heartbeat{Partition: w.Partition, Partitions: w.Partitions, UpdatedAt: w.UpdatedAt, ValidUntil: w.ValidUntil}, nil
}

// Feed is what a reader of rtb.pacing does with its records; its Record is the function an
// events.StateReader calls.
type Feed struct {
	State     func(State)
	Heartbeat func(Heartbeat)
	// Bad is told of records that cannot be read (nil: they are skipped silently).
	Bad func(key string, err error)
}

// Record handles one rtb.pacing record; a tombstone (nil value) is nothing to act on.
func (f Feed) Record(key string, value []byte) {
	if value == nil {
		return
	}
	if IsHeartbeatKey(key) {
		h, err := DecodeHeartbeat(value)
		switch {
		case err != nil:
			if f.Bad != nil {
				f.Bad(key, err)
			}
		case f.Heartbeat != nil:
			f.Heartbeat(h)
		}
		return
	}
	st, err := DecodeState(value)
	switch {
	case err != nil:
		if f.Bad != nil {
			f.Bad(key, err)
		}
	case f.State != nil:
		f.State(st)
	}
}
