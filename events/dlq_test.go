package events

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
)

// A dead letter must fit rtb.dlq, which may take smaller messages than the topic the poison came
// from: a letter the DLQ refuses would hold its consumer on that message for good.
func TestDeadLetterFitsTheDLQ(t *testing.T) {
	for _, tc := range []struct {
		name      string
		size      int
		wantSize  int
		truncated string
	}{
		{"small poison kept whole", 100, 100, ""},
		{"at the bound kept whole", maxDLQValue, maxDLQValue, ""},
		{"2 MB cut to its start", 2 << 20, maxDLQValue, "2097152"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := bytes.Repeat([]byte("x"), tc.size)
			l := deadLetter(kafka.Message{Topic: TopicWins, Partition: 2, Offset: 7, Key: []byte("c"), Value: v}, "g", errors.New("why"), time.Now())
			h := map[string]string{}
			for _, x := range l.Headers {
				h[x.Key] = string(x.Value)
			}
			if len(l.Value) != tc.wantSize || !bytes.HasPrefix(v, l.Value) || h[HeaderDLQTruncated] != tc.truncated {
				t.Errorf("letter of %d bytes, truncated header %q; want %d bytes of its start and %q", len(l.Value), h[HeaderDLQTruncated], tc.wantSize, tc.truncated)
			}
			if h[HeaderDLQError] != "why" || h[HeaderDLQTopic] != TopicWins || h[HeaderDLQOffset] != "7" || string(l.Key) != "c" {
				t.Errorf("letter headers %v, key %q", h, l.Key)
			}
		})
	}
}
