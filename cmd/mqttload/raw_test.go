package main

import (
	"bytes"
	"testing"
)

// The raw client's packets, byte for byte as MQTT 3.1.1 defines them.
func TestRawPackets(t *testing.T) {
	for _, tt := range []struct {
		n    int
		want []byte
	}{{0, []byte{0}}, {127, []byte{0x7f}}, {128, []byte{0x80, 0x01}}, {16383, []byte{0xff, 0x7f}}, {16384, []byte{0x80, 0x80, 0x01}}} {
		if got := appendLength(nil, tt.n); !bytes.Equal(got, tt.want) {
			t.Errorf("length %d: % x, want % x", tt.n, got, tt.want)
		}
	}
	got := publishPacket(nil, "a/b", 1, 0x0102, []byte("hi"))
	want := []byte{0x32, 9, 0, 3, 'a', '/', 'b', 0x01, 0x02, 'h', 'i'}
	if !bytes.Equal(got, want) {
		t.Errorf("QoS 1 publish % x, want % x", got, want)
	}
	got = publishPacket(nil, "t", 0, 7, []byte("x"))
	want = []byte{0x30, 4, 0, 1, 't', 'x'}
	if !bytes.Equal(got, want) {
		t.Errorf("QoS 0 publish % x, want % x", got, want)
	}
}

func TestRunRejectsRemoteBrokers(t *testing.T) {
	var out bytes.Buffer
	for _, b := range []string{"192.0.2.1:1883", "example.com:1883"} {
		if err := run(t.Context(), []string{"p2p", "-broker", b}, &out); err == nil {
			t.Errorf("broker %s accepted", b)
		}
	}
}
