package events

import (
	"log/slog"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/segmentio/kafka-go"
)

// Headers a consumer adds to a message it moves to the dead-letter topic (TopicDLQ). The message
// keeps its original key, value and headers; these come after them.
const (
	HeaderDLQError     = "rtb-dlq-error"     // why the message could not be read
	HeaderDLQTopic     = "rtb-dlq-topic"     // where it was read from
	HeaderDLQPartition = "rtb-dlq-partition" // decimal
	HeaderDLQOffset    = "rtb-dlq-offset"    // decimal
	HeaderDLQGroup     = "rtb-dlq-group"     // the consumer group that refused it
	HeaderDLQTime      = "rtb-dlq-time"      // when, RFC 3339 UTC
	// HeaderDLQTruncated is the original size in bytes (decimal) of a value cut to maxDLQValue.
	HeaderDLQTruncated = "rtb-dlq-truncated"
)

// maxDLQValue bounds the value a dead letter keeps. A topic may take larger messages than
// rtb.dlq does (a cluster's max.message.bytes is per topic): a letter the DLQ refuses would block
// its consumer on that message for good, so a larger value keeps only its start, which is what a
// person reading the DLQ needs to recognise it.
const maxDLQValue = 256 << 10

// maxDLQErrorLen bounds the error header: a decoder's message can quote the input at length.
const maxDLQErrorLen = 1024

// deadLetter is the DLQ message for m, refused by group because of cause.
func deadLetter(m kafka.Message, group string, cause error, now time.Time) kafka.Message {
	text := cause.Error()
	if len(text) > maxDLQErrorLen {
		cut := maxDLQErrorLen
		for cut > 0 && !utf8.RuneStart(text[cut]) {
			cut--
		}
		text = text[:cut] + "…"
	}
	headers := make([]kafka.Header, 0, len(m.Headers)+7)
	headers = append(headers, m.Headers...)
	headers = append(headers,
		kafka.Header{Key: HeaderDLQError, Value: []byte(text)},
		kafka.Header{Key: HeaderDLQTopic, Value: []byte(m.Topic)},
		kafka.Header{Key: HeaderDLQPartition, Value: strconv.AppendInt(nil, int64(m.Partition), 10)},
		kafka.Header{Key: HeaderDLQOffset, Value: strconv.AppendInt(nil, m.Offset, 10)},
		kafka.Header{Key: HeaderDLQGroup, Value: []byte(group)},
		kafka.Header{Key: HeaderDLQTime, Value: now.UTC().AppendFormat(nil, time.RFC3339Nano)},
	)
	value := m.Value
	if len(value) > maxDLQValue {
		headers = append(headers, kafka.Header{Key: HeaderDLQTruncated, Value: strconv.AppendInt(nil, int64(len(value)), 10)})
		value = value[:maxDLQValue]
	}
	return kafka.Message{Key: m.Key, Value: value, Headers: headers}
}

// newDLQWriter is the writer a consumer sends dead letters with: synchronous (the consumer commits
// only once the broker has the letter), acknowledged by all in-sync replicas, no batching delay
// (dead letters are rare and one at a time), and no topic auto-creation (a missing rtb.dlq is an
// outage to retry through, not something to paper over with a one-partition default topic).
func newDLQWriter(brokers []string, transport kafka.RoundTripper) *kafka.Writer {
	return &kafka.Writer{
		Addr:         kafka.TCP(brokers...),
		Topic:        TopicDLQ,
		Balancer:     &kafka.Hash{},
		RequiredAcks: kafka.RequireAll,
		BatchTimeout: time.Millisecond,
		BatchSize:    1,
		MaxAttempts:  3,
		WriteTimeout: 10 * time.Second,
		ReadTimeout:  10 * time.Second,
		Transport:    transport,
	}
}

// rateLog writes a warning at most once per interval, with the number it held back since the last
// line, so that a producer gone wrong does not turn into a line per message. Not safe for
// concurrent use: each reader owns one.
type rateLog struct {
	last  time.Time
	quiet int // lines held back since last
}

func (d *rateLog) warn(log *slog.Logger, every time.Duration, msg string, attrs ...any) {
	now := time.Now()
	if !d.last.IsZero() && now.Sub(d.last) < every {
		d.quiet++
		return
	}
	log.Warn(msg, append(attrs, "more_since_last_line", d.quiet)...)
	d.last, d.quiet = now, 0
}

// deadLetterLog logs dead letters at most one line per consumerDLQLogEvery.
type deadLetterLog struct{ rateLog }

func (d *deadLetterLog) log(log *slog.Logger, m kafka.Message, cause error) {
	d.warn(log, consumerDLQLogEvery, "message moved to the dead-letter topic", "topic", m.Topic,
		"partition", m.Partition, "offset", m.Offset, "err", cause, "dlq", TopicDLQ)
}
