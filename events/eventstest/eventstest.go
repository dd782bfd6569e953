// Package eventstest starts the embedded broker for tests of the packages that consume or produce
// events, so that each does not carry its own copy of the start-up.
package eventstest

import (
	"context"
	"log/slog"
	"net"
	"testing"

	"rtb/events"
)

// FreeAddr returns a loopback address with a port free at the time of the call.
func FreeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// Broker starts an embedded broker on a free loopback port (4 partitions per event topic, in
// memory, silent unless log is given) and closes it when the test ends; it returns its addresses.
func Broker(t testing.TB, log *slog.Logger) []string {
	t.Helper()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	b, err := events.StartBroker(context.Background(), events.BrokerConfig{Addr: FreeAddr(t), Partitions: 4, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b.Addrs()
}
