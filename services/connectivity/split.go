package connectivity

import (
	"context"
	"errors"
)

// splitClient is an MQTT connection with separatePublisherClient: sources
// consume through sub, targets and reply targets publish through pub, a
// second client with its own client ID (publisherId). A reconnect of the
// consumer for redelivery then does not interrupt publishing.
type splitClient struct {
	sub, pub Client
}

func (s *splitClient) Connect(ctx context.Context) error {
	if err := s.sub.Connect(ctx); err != nil {
		return err
	}
	// A failed publisher leaves the consumer up: the next attempt
	// replaces both links.
	return s.pub.Connect(ctx)
}

func (s *splitClient) Subscribe(ctx context.Context, addresses []string, qos int, deliver Deliver) error {
	return s.sub.Subscribe(ctx, addresses, qos, deliver)
}

func (s *splitClient) Publish(ctx context.Context, address string, qos int, msg External) error {
	return s.pub.Publish(ctx, address, qos, msg)
}

func (s *splitClient) Connected() bool { return s.sub.Connected() && s.pub.Connected() }

func (s *splitClient) Close() error { return errors.Join(s.sub.Close(), s.pub.Close()) }
