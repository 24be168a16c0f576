package mqtt

import (
	"errors"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// pipelineWindow is how many commands of one client run at once; a client
// that sends more waits in its read loop (back-pressure).
const pipelineWindow = 16

// clientPipeline runs one client's twin commands concurrently while
// keeping what MQTT and Ditto require: commands addressing the same entity
// apply in the order they were published, and QoS 1 PUBACKs go out in the
// order the PUBLISHes arrived (MQTT 3.1.1 §4.6), each only after its
// command committed.
type clientPipeline struct {
	slots chan struct{}

	mu    chan struct{} // a lock the submitting and completing goroutines share
	queue []*pendingAck
	last  map[string]chan struct{} // per entity key: done of its latest command
}

type pendingAck struct {
	id   uint16
	qos  byte
	done bool
	code error
}

func newClientPipeline() *clientPipeline {
	return &clientPipeline{slots: make(chan struct{}, pipelineWindow), mu: make(chan struct{}, 1), last: map[string]chan struct{}{}}
}

func (p *clientPipeline) lock()   { p.mu <- struct{}{} }
func (p *clientPipeline) unlock() { <-p.mu }

// pipeline returns the client's pipeline.
func (b *Broker) pipeline(cl *mochi.Client) *clientPipeline {
	b.pipeMu.Lock()
	defer b.pipeMu.Unlock()
	p, ok := b.pipes[cl]
	if !ok {
		p = newClientPipeline()
		b.pipes[cl] = p
	}
	return p
}

// dropPipeline forgets a client's pipeline once it disconnected; commands
// still running finish and their acknowledgements fail to write.
func (b *Broker) dropPipeline(cl *mochi.Client) {
	b.pipeMu.Lock()
	delete(b.pipes, cl)
	b.pipeMu.Unlock()
}

// submit starts run for pk in a broker goroutine after the previous
// command of the same key finished.
func (p *clientPipeline) submit(b *Broker, cl *mochi.Client, pk packets.Packet, key string, run func() error) {
	if b.ctx.Err() != nil {
		return // closing: mochi stops the client; it will resend
	}
	select {
	case p.slots <- struct{}{}:
	case <-b.ctx.Done():
		return
	}
	ack := &pendingAck{id: pk.PacketID, qos: pk.FixedHeader.Qos}
	mine := make(chan struct{})
	p.lock()
	p.queue = append(p.queue, ack)
	prev := p.last[key]
	p.last[key] = mine
	p.unlock()
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		if prev != nil {
			select {
			case <-prev:
			case <-b.ctx.Done():
			}
		}
		code := run()
		close(mine)
		p.lock()
		if p.last[key] == mine {
			delete(p.last, key)
		}
		ack.done, ack.code = true, code
		// Acknowledge every finished command at the head, in order.
		for len(p.queue) > 0 && p.queue[0].done {
			a := p.queue[0]
			p.queue = p.queue[1:]
			if a.qos == 1 {
				_ = cl.WritePacket(pubAck(a))
			}
			<-p.slots
		}
		p.unlock()
	}()
}

// pubAck is the PUBACK of a finished command: success, or the MQTT 5
// reason code ackCode chose.
func pubAck(a *pendingAck) packets.Packet {
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, PacketID: a.id}
	var c packets.Code
	if errors.As(a.code, &c) && c.Code >= packets.ErrUnspecifiedError.Code {
		pk.ReasonCode = c.Code
		pk.Properties.ReasonString = c.Reason
	}
	return pk
}
