// WebSocket with the official client: twin commands and their responses and
// errors, events, messages (HTTP send, WebSocket respond), live commands.
'use strict';

const {
  Thing, Feature, DefaultMessagesOptions, DefaultMatchOptions,
} = require('@eclipse-ditto/ditto-javascript-client-node');
const {
  assert, check, rejects, expectHTTPError, waitFor, httpClient, wsClient, rawGet, ns,
} = require('./lib');

// send writes a raw Ditto Protocol envelope through the client's socket; the
// client has no API for responses (they need a "status").
function send(client, envelope) {
  return client.responseHandler.resilienceHandler.send(JSON.stringify(envelope));
}

function respond(client, msg, status, value, contentType = 'application/json') {
  return send(client, {
    topic: msg.topic,
    headers: { 'correlation-id': msg.headers['correlation-id'], 'content-type': contentType },
    path: msg.path.replace('/inbox/', '/outbox/'),
    value,
    status,
  });
}

module.exports = async function ws() {
  const http = httpClient();
  const id = `${ns}:ws-thing`;
  let twin;
  let live;

  await check('ws: connect twin and live clients with basic auth', async () => {
    twin = await wsClient();
    live = await wsClient({ live: true });
  });
  if (!twin || !live) {
    return;
  }
  const things = twin.getThingsHandle();
  const features = twin.getFeaturesHandle(id);
  // Each get*Handle call builds a new handle with its own "requested" flag.
  const events = twin.getEventsHandle();
  const messages = live.getMessagesHandle();
  const commands = live.getCommandsHandle();

  try {
    await check('ws twin: createThing (201, Thing value)', async () => {
      const res = await things.createThing(new Thing(id, undefined, { a: 1 }, { f: new Feature('f', undefined, { p: 1 }) }));
      assert.equal(res.status, 201);
      assert.ok(res.body instanceof Thing);
      assert.equal(res.body.thingId, id);
      assert.equal(res.body.policyId, id);
    });

    await check('ws twin: getThing (200)', async () => {
      const t = await things.getThing(id);
      assert.equal(t.thingId, id);
      assert.deepEqual(t.attributes, { a: 1 });
      assert.deepEqual(t.features.f.properties, { p: 1 });
    });

    await check('ws twin: putThing (204) and patchThing (merge, 204)', async () => {
      let res = await things.putThing(new Thing(id, id, { a: 2 }, { f: new Feature('f', undefined, { p: 2 }) }));
      assert.equal(res.status, 204);
      res = await things.patchThing(new Thing(id, undefined, { b: 3 }));
      assert.equal(res.status, 204);
      assert.deepEqual(await things.getAttributes(id), { a: 2, b: 3 });
    });

    await check('ws twin: attributes and feature properties', async () => {
      let res = await things.putAttribute(id, 'c/d', 'x');
      assert.equal(res.status, 201);
      assert.deepEqual(res.body, 'x');
      res = await things.putAttribute(id, 'c/d', 'y');
      assert.equal(res.status, 204);
      assert.equal(await things.getAttribute(id, 'c/d'), 'y');
      res = await things.patchAttributes(id, { b: null });
      assert.equal(res.status, 204);
      res = await features.putProperty('f', 'q', true);
      assert.equal(res.status, 201);
      assert.equal(await features.getProperty('f', 'q'), true);
      const f = await features.getFeature('f');
      assert.deepEqual(f.properties, { p: 2, q: true });
      const del = await things.deleteAttribute(id, 'c');
      assert.equal(del.status, 204);
    });

    await check('ws twin: errors reject with the Ditto error JSON', async () => {
      const err = await rejects(() => things.getThing(`${ns}:ws-missing`));
      assert.equal(err.status, 404);
      assert.equal(err.error, 'things:thing.notfound');
      assert.equal(typeof err.message, 'string');
      const attr = await rejects(() => things.getAttribute(id, 'nope'));
      assert.equal(attr.status, 404);
      assert.equal(attr.error, 'things:attribute.notfound');
      const pre = await rejects(() => things.putAttribute(id, 'a', 9, DefaultMatchOptions.getInstance().ifMatch('"rev:999"')));
      assert.equal(pre.status, 412);
      assert.equal(pre.error, 'things:precondition.failed');
    });

    await check('ws events: requestEvents and subscribeToThing get HTTP changes', async () => {
      await events.requestEvents();
      const got = [];
      const sub = events.subscribeToThing(id, e => got.push(e));
      await http.getThingsHandle().putAttribute(id, 'fromHttp', 42);
      const e = await waitFor(() => got.find(x => x.path === '/attributes/fromHttp'), 5000, 'event');
      events.deleteSubscription(sub);
      assert.equal(e.action, 'created');
      assert.equal(e.topic, `${ns}/ws-thing/things/twin/events/created`);
      assert.equal(e.value, 42);
      assert.equal(typeof e.headers['correlation-id'], 'string');
    });

    await check('ws events: subscribeToFeature/attribute filters by path and action', async () => {
      const feature = [];
      const attrModified = [];
      const s1 = events.subscribeToFeature(id, 'f', e => feature.push(e));
      const s2 = events.subscribeToAttribute(id, 'fromHttp', e => attrModified.push(e), 'modified');
      await http.getFeaturesHandle(id).putProperty('f', 'p', 7);
      await http.getThingsHandle().putAttribute(id, 'fromHttp', 43);
      await waitFor(() => feature.length >= 1 && attrModified.length >= 1, 5000, 'filtered events');
      events.deleteSubscription(s1);
      events.deleteSubscription(s2);
      assert.equal(feature[0].path, '/features/f/properties/p');
      assert.equal(feature[0].value, 7);
      assert.equal(attrModified[0].value, 43);
    });

    await check('ws events: commands of one socket are events on another, never on itself', async () => {
      const observer = await wsClient();
      try {
        const observed = observer.getEventsHandle();
        await observed.requestEvents();
        const got = [];
        const own = [];
        const sub = observed.subscribeToThing(id, e => got.push(e));
        const ownSub = events.subscribeToThing(id, e => own.push(e));
        for (let i = 0; i < 20; i++) {
          const res = await things.putAttribute(id, 'loop', i);
          assert.ok(res.status === 201 || res.status === 204, `status ${res.status}`);
        }
        await http.getThingsHandle().putAttribute(id, 'loop', 'http');
        await waitFor(() => got.filter(e => e.path === '/attributes/loop').length === 21, 5000, '21 events');
        await waitFor(() => own.find(e => e.value === 'http'), 5000, 'the HTTP event');
        events.deleteSubscription(ownSub);
        assert.deepEqual(own.filter(e => e.path === '/attributes/loop').map(e => e.value), ['http']);
        assert.deepEqual(got.map(e => e.value), [...Array(20).keys(), 'http']);
        assert.equal(typeof got[0].headers['ditto-originator'], 'string');
      } finally {
        observer.close();
      }
    });

    await check('ws messages: HTTP messageToThing, WebSocket responds (status, body, content-type)', async () => {
      await messages.requestMessages();
      const sub = messages.subscribeToThing(id, msg => {
        respond(live, msg, 200, { answer: msg.value.question * 2 });
      }, 'ask', 'inbox');
      try {
        const res = await http.getMessagesHandle().messageToThing(id, 'ask', { question: 21 }, 'application/json',
          DefaultMessagesOptions.getInstance().withTimeout(5));
        assert.equal(res.status, 200);
        assert.deepEqual(res.body, { answer: 42 });
        assert.match(res.headers.get('content-type'), /^application\/json/);
      } finally {
        messages.deleteSubscription(sub);
      }
    });

    await check('ws messages: text message, custom status, feature inbox', async () => {
      const seen = [];
      const sub = messages.subscribeToFeature(id, 'f', msg => {
        seen.push(msg);
        respond(live, msg, 418, 'teapot', 'text/plain');
      }, 'brew', 'inbox');
      try {
        const err = await rejects(() => http.getMessagesHandle().messageToFeature(id, 'f', 'brew', 'coffee', 'text/plain',
          DefaultMessagesOptions.getInstance().withTimeout(5)));
        assert.equal(err.status, 418);
        assert.equal(err.body, 'teapot');
        // The client JSON-encodes every message payload, whatever its content type.
        assert.equal(seen[0].value, '"coffee"');
        assert.equal(seen[0].headers['content-type'], 'text/plain');
        assert.equal(seen[0].path, '/features/f/inbox/messages/brew');
      } finally {
        messages.deleteSubscription(sub);
      }
    });

    await check('ws messages: no responder is 408, timeout=0 is 202', async () => {
      const err = await rejects(() => http.getMessagesHandle().messageToThing(id, 'nobody', {}, 'application/json',
        DefaultMessagesOptions.getInstance().withTimeout(1)));
      expectHTTPError(err, 408);
      const res = await http.getMessagesHandle().messageToThing(id, 'fire', {}, 'application/json',
        DefaultMessagesOptions.getInstance().withTimeout(0));
      assert.equal(res.status, 202);
    });

    await check('ws messages: WebSocket messageToThing with response from another WebSocket', async () => {
      const responder = messages;
      const sub = responder.subscribeToThing(id, msg => respond(live, msg, 200, `pong:${msg.value}`, 'text/plain'), 'ping', 'inbox');
      const sender = await wsClient({ live: true });
      try {
        const res = await sender.getMessagesHandle().messageToThing(id, 'ping', 'x', 'text/plain');
        assert.equal(res.status, 200);
        assert.equal(res.body, 'pong:x');
      } finally {
        responder.deleteSubscription(sub);
        sender.close();
      }
    });

    await check('ws messages: outbox messages reach outbox subscribers', async () => {
      const got = [];
      const sub = messages.subscribeToThing(id, msg => got.push(msg), 'telemetry', 'outbox');
      const sender = await wsClient({ live: true });
      try {
        await sender.getMessagesHandle().messageFromThingWithoutResponse(id, 'telemetry', { t: 1 }, 'application/json',
          DefaultMessagesOptions.getInstance().addHeader('response-required', false));
        const m = await waitFor(() => got[0], 5000, 'outbox message');
        assert.deepEqual(m.value, { t: 1 });
        assert.equal(m.path, '/outbox/messages/telemetry');
      } finally {
        messages.deleteSubscription(sub);
        sender.close();
      }
    });

    await check('ws live commands: requestCommands, HTTP channel=live retrieve answered over WebSocket', async () => {
      await commands.requestCommands();
      const sub = commands.subscribeToThing(id, cmd => {
        if (cmd.action !== 'retrieve') {
          return;
        }
        send(live, {
          topic: cmd.topic,
          headers: { 'correlation-id': cmd.headers['correlation-id'], 'content-type': 'application/json' },
          path: cmd.path,
          value: { live: true },
          status: 200,
        });
      });
      try {
        const res = await rawGet(`/api/2/things/${id}/attributes?channel=live&timeout=5`);
        assert.equal(res.status, 200);
        assert.deepEqual(res.body, { live: true });
      } finally {
        commands.deleteSubscription(sub);
      }
    });

    await check('ws events: an HTTP merge is a merged event with the patch as value', async () => {
      const got = [];
      const sub = events.subscribeToThing(id, e => got.push(e), 'merged');
      await http.getThingsHandle().patchThing(new Thing(id, undefined, { merged: { x: 1 } }));
      const e = await waitFor(() => got[0], 5000, 'merged event');
      events.deleteSubscription(sub);
      assert.equal(e.topic, `${ns}/ws-thing/things/twin/events/merged`);
      assert.equal(e.path, '/');
      assert.deepEqual(e.value, { thingId: id, attributes: { merged: { x: 1 } } });
    });

    await check('ws live: live commands of one client answered by another', async () => {
      const sub = commands.subscribeToThing(id, cmd => {
        const status = cmd.action === 'retrieve' ? 200 : 204;
        send(live, {
          topic: cmd.topic,
          headers: { 'correlation-id': cmd.headers['correlation-id'], 'content-type': 'application/json' },
          path: cmd.path,
          value: cmd.action === 'retrieve' ? 'from-device' : undefined,
          status,
        });
      });
      const requester = await wsClient({ live: true });
      try {
        const liveThings = requester.getThingsHandle();
        assert.equal(await liveThings.getAttribute(id, 'a'), 'from-device');
        const res = await liveThings.putAttribute(id, 'a', 5);
        assert.equal(res.status, 204);
      } finally {
        commands.deleteSubscription(sub);
        requester.close();
      }
    });

    await check('ws live: live events from a device reach live event subscribers', async () => {
      const device = await wsClient({ live: true });
      try {
        const liveEvents = live.getEventsHandle();
        await liveEvents.requestEvents();
        const got = [];
        const sub = liveEvents.subscribeToThing(id, e => got.push(e));
        await send(device, {
          topic: `${ns}/ws-thing/things/live/events/modified`,
          headers: { 'correlation-id': 'live-event-1', 'content-type': 'application/json' },
          path: '/attributes/temperature',
          value: 23,
        });
        const e = await waitFor(() => got[0], 5000, 'live event');
        liveEvents.deleteSubscription(sub);
        await liveEvents.stopEvents();
        assert.equal(e.action, 'modified');
        assert.equal(e.value, 23);
      } finally {
        device.close();
      }
    });

    await check('ws messages: HTTP claim answered over WebSocket', async () => {
      const sub = messages.subscribeToThing(id, msg => respond(live, msg, 200, { granted: true }), 'claim', 'inbox');
      try {
        const res = await http.getMessagesHandle().claim(id, { who: 'me' }, DefaultMessagesOptions.getInstance().withTimeout(5));
        assert.equal(res.status, 200);
        assert.deepEqual(res.body, { granted: true });
      } finally {
        messages.deleteSubscription(sub);
      }
    });

    await check('ws messages: HTTP messageFromThing (timeout 0) reaches outbox subscribers', async () => {
      const got = [];
      const sub = messages.subscribeToThing(id, msg => got.push(msg), 'report', 'outbox');
      try {
        const res = await http.getMessagesHandle().messageFromThing(id, 'report', { level: 3 }, 'application/json',
          DefaultMessagesOptions.getInstance().withTimeout(0));
        assert.equal(res.status, 202);
        const m = await waitFor(() => got[0], 5000, 'outbox message');
        assert.deepEqual(m.value, { level: 3 });
        assert.equal(m.topic, `${ns}/ws-thing/things/live/messages/report`);
      } finally {
        messages.deleteSubscription(sub);
      }
    });

    await check('ws twin: deleted event of an HTTP delete', async () => {
      const got = [];
      const sub = events.subscribeToThing(id, e => got.push(e), 'deleted');
      const res = await http.getThingsHandle().deleteThing(id);
      assert.equal(res.status, 204);
      const e = await waitFor(() => got[0], 5000, 'deleted event');
      events.deleteSubscription(sub);
      assert.equal(e.path, '/');
      assert.equal(e.topic, `${ns}/ws-thing/things/twin/events/deleted`);
      await events.stopEvents();
    });

    await check('ws twin: deleteThing over WebSocket (204), then 404', async () => {
      await things.putThing(new Thing(id, id));
      const res = await things.deleteThing(id);
      assert.equal(res.status, 204);
      const err = await rejects(() => things.getThing(id));
      assert.equal(err.status, 404);
    });
  } finally {
    twin.close();
    live.close();
  }
};
