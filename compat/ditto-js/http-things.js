// Things and features over HTTP with the official client.
'use strict';

const {
  Thing, Feature, DefaultFieldsOptions, DefaultMatchOptions, DefaultGetThingsOptions,
} = require('@eclipse-ditto/ditto-javascript-client-node');
const { assert, check, rejects, expectHTTPError, httpClient, rawGet, ns, user } = require('./lib');

module.exports = async function httpThings() {
  const client = httpClient();
  const things = client.getThingsHandle();
  const id = `${ns}:http-thing`;
  const features = client.getFeaturesHandle(id);

  await check('http things: putThing creates (201, body is the thing)', async () => {
    const thing = new Thing(id, undefined, { manufacturer: 'ACME', location: { room: 'kitchen' } },
      { lamp: new Feature('lamp', undefined, { on: false, brightness: 10 }) });
    const res = await things.putThing(thing);
    assert.equal(res.status, 201);
    assert.equal(res.wasCreated(), true);
    assert.equal(res.body.thingId, id);
    assert.equal(res.body.policyId, id);
    assert.deepEqual(res.body.attributes, { manufacturer: 'ACME', location: { room: 'kitchen' } });
    assert.deepEqual(res.body.features.lamp.properties, { on: false, brightness: 10 });
    assert.match(res.headers.get('etag'), /^"rev:1"$/);
    assert.ok(res.headers.get('location'), 'location header');
  });

  await check('http things: getThing parses into Thing', async () => {
    const t = await things.getThing(id);
    assert.ok(t instanceof Thing);
    assert.equal(t.thingId, id);
    assert.equal(t.namespace, ns);
    assert.equal(t.name, 'http-thing');
    assert.equal(t.policyId, id);
    assert.equal(t.attributes.manufacturer, 'ACME');
    assert.ok(t.features.lamp instanceof Feature);
    assert.equal(t.features.lamp.id, 'lamp');
    assert.equal(t.features.lamp.properties.brightness, 10);
  });

  await check('http things: getThing with fields incl. _revision/_modified/_created', async () => {
    const opts = DefaultFieldsOptions.getInstance().withFields('thingId', 'attributes/manufacturer', '_revision', '_modified', '_created');
    const t = await things.getThing(id, opts);
    assert.equal(t.thingId, id);
    assert.deepEqual(t.attributes, { manufacturer: 'ACME' });
    assert.equal(t.features, undefined);
    assert.equal(t._revision, 1);
    assert.equal(typeof t._modified, 'string');
    assert.equal(typeof t._created, 'string');
  });

  await check('http things: putThing of a retrieved thing (with _revision etc.) updates (204)', async () => {
    const opts = DefaultFieldsOptions.getInstance().withFields('thingId', 'policyId', 'attributes', 'features', '_revision', '_modified', '_created');
    const t = await things.getThing(id, opts);
    const res = await things.putThing(t);
    assert.equal(res.status, 204);
    assert.equal(res.wasUpdated(), true);
    assert.equal(res.body, null);
  });

  await check('http things: patchThing merges (204)', async () => {
    const patch = new Thing(id, undefined, { serial: 'X-1', location: { floor: 2 } });
    const res = await things.patchThing(patch);
    assert.equal(res.status, 204);
    const attrs = await things.getAttributes(id);
    assert.deepEqual(attrs, { manufacturer: 'ACME', serial: 'X-1', location: { room: 'kitchen', floor: 2 } });
  });

  await check('http things: postThing generates an ID (201)', async () => {
    const t = await things.postThing({ attributes: { posted: true } });
    assert.ok(t instanceof Thing);
    assert.match(t.thingId, /^[^:]+:.+/);
    assert.equal(t.attributes.posted, true);
    await things.deleteThing(t.thingId);
  });

  await check('http things: getThings by ids', async () => {
    const list = await things.getThings([id]);
    assert.equal(list.length, 1);
    assert.equal(list[0].thingId, id);
    const fielded = await things.getThings([id], DefaultGetThingsOptions.getInstance().withFields('thingId'));
    assert.deepEqual(fielded[0].toObject(), { thingId: id });
  });

  await check('http things: attributes put/get/patch/delete', async () => {
    let res = await things.putAttribute(id, 'color', 'red');
    assert.equal(res.status, 201);
    assert.equal(res.body, 'red');
    res = await things.putAttribute(id, 'color', 'blue');
    assert.equal(res.status, 204);
    assert.equal(await things.getAttribute(id, 'color'), 'blue');
    assert.deepEqual(await things.getAttribute(id, 'location'), { room: 'kitchen', floor: 2 });
    assert.equal(await things.getAttribute(id, 'location/room'), 'kitchen');
    res = await things.patchAttribute(id, 'location', { floor: null, wing: 'east' });
    assert.equal(res.status, 204);
    assert.deepEqual(await things.getAttribute(id, 'location'), { room: 'kitchen', wing: 'east' });
    res = await things.patchAttributes(id, { color: null, size: 3 });
    assert.equal(res.status, 204);
    const attrs = await things.getAttributes(id);
    assert.equal(attrs.color, undefined);
    assert.equal(attrs.size, 3);
    const del = await things.deleteAttribute(id, 'size');
    assert.equal(del.status, 204);
    res = await things.putAttributes(id, { a: 1 });
    assert.equal(res.status, 204);
    assert.deepEqual(await things.getAttributes(id), { a: 1 });
  });

  await check('http things: deleteAttributes then 404 with things:attributes.notfound', async () => {
    const del = await things.deleteAttributes(id);
    assert.equal(del.status, 204);
    const err = await rejects(() => things.getAttributes(id));
    expectHTTPError(err, 404, 'things:attributes.notfound');
    const err2 = await rejects(() => things.getAttribute(id, 'nope'));
    expectHTTPError(err2, 404, 'things:attribute.notfound');
  });

  await check('http things: a created null attribute answers 201 with body null', async () => {
    const res = await things.putAttribute(id, 'nothing', null);
    assert.equal(res.status, 201);
    assert.equal(res.body, null);
    assert.equal(await things.getAttribute(id, 'nothing'), null);
    const again = await things.putAttribute(id, 'nothing', null);
    assert.equal(again.status, 204);
    await things.deleteAttribute(id, 'nothing');
  });

  await check('http things: definition put/get/patch/delete', async () => {
    let res = await things.putDefinition(id, 'org.example:lamp:1.0.0');
    assert.equal(res.status, 201);
    assert.equal(res.body, 'org.example:lamp:1.0.0');
    assert.equal(await things.getDefinition(id), 'org.example:lamp:1.0.0');
    res = await things.patchDefinition(id, 'org.example:lamp:2.0.0');
    assert.equal(res.status, 204);
    assert.equal(await things.getDefinition(id), 'org.example:lamp:2.0.0');
    const del = await things.deleteDefinition(id);
    assert.equal(del.status, 204);
    const err = await rejects(() => things.getDefinition(id));
    expectHTTPError(err, 404, 'things:definition.notfound');
  });

  await check('http things: policyId get/put', async () => {
    assert.equal(await things.getPolicyId(id), id);
    const res = await things.putPolicyId(id, id);
    assert.equal(res.status, 204);
  });

  await check('http features: put/get feature and features', async () => {
    let res = await features.putFeature(new Feature('sensor', ['org.example:sensor:1.0.0'], { temp: 21.5 }));
    assert.equal(res.status, 201);
    assert.ok(res.body instanceof Feature);
    assert.equal(res.body.id, 'sensor');
    assert.deepEqual(res.body.properties, { temp: 21.5 });
    const f = await features.getFeature('sensor');
    assert.equal(f.id, 'sensor');
    assert.deepEqual(f.definition, ['org.example:sensor:1.0.0']);
    const all = await features.getFeatures();
    assert.deepEqual(Object.keys(all).sort(), ['lamp', 'sensor']);
    assert.equal(all.lamp.properties.on, false);
    res = await features.patchFeature(new Feature('sensor', undefined, { humidity: 40 }));
    assert.equal(res.status, 204);
    assert.deepEqual(await features.getProperties('sensor'), { temp: 21.5, humidity: 40 });
  });

  await check('http features: properties put/get/patch/delete', async () => {
    let res = await features.putProperty('lamp', 'on', true);
    assert.equal(res.status, 204);
    assert.equal(await features.getProperty('lamp', 'on'), true);
    res = await features.putProperty('lamp', 'config/mode', 'eco');
    assert.equal(res.status, 201);
    assert.equal(res.body, 'eco');
    assert.equal(await features.getProperty('lamp', 'config/mode'), 'eco');
    res = await features.patchProperty('lamp', 'config', { mode: null, level: 2 });
    assert.equal(res.status, 204);
    assert.deepEqual(await features.getProperty('lamp', 'config'), { level: 2 });
    res = await features.patchProperties('lamp', { brightness: 99 });
    assert.equal(res.status, 204);
    res = await features.putProperties('lamp', { on: false, brightness: 1 });
    assert.equal(res.status, 204);
    assert.deepEqual(await features.getProperties('lamp'), { on: false, brightness: 1 });
    const del = await features.deleteProperty('lamp', 'brightness');
    assert.equal(del.status, 204);
    const err = await rejects(() => features.getProperty('lamp', 'brightness'));
    expectHTTPError(err, 404, 'things:feature.property.notfound');
    await features.deleteProperties('lamp');
    const err2 = await rejects(() => features.getProperties('lamp'));
    expectHTTPError(err2, 404, 'things:feature.properties.notfound');
  });

  await check('http features: definition put/get/patch/delete', async () => {
    let res = await features.putDefinition('lamp', ['org.example:lamp:1.0.0']);
    assert.equal(res.status, 201);
    assert.deepEqual(res.body, ['org.example:lamp:1.0.0']);
    assert.deepEqual(await features.getDefinition('lamp'), ['org.example:lamp:1.0.0']);
    res = await features.putDefinition('lamp', ['org.example:lamp:2.0.0', 'org.example:base:1.0.0']);
    assert.equal(res.status, 204);
    res = await features.patchDefinition('lamp', ['org.example:lamp:3.0.0']);
    assert.equal(res.status, 204);
    assert.deepEqual(await features.getDefinition('lamp'), ['org.example:lamp:3.0.0']);
    await features.deleteDefinition('lamp');
    const err = await rejects(() => features.getDefinition('lamp'));
    expectHTTPError(err, 404, 'things:feature.definition.notfound');
  });

  await check('http features: desired properties via raw feature JSON', async () => {
    // The client has no desired-properties methods; a feature object with
    // desiredProperties passes through putFeatures and getFeatures unchanged.
    const res = await features.putFeature({
      id: 'lamp', toObject: () => ({ properties: { on: false }, desiredProperties: { on: true } }),
    });
    assert.equal(res.status, 204);
    const raw = await rawGet(`/api/2/things/${id}/features/lamp/desiredProperties`);
    assert.equal(raw.status, 200);
    assert.deepEqual(raw.body, { on: true });
    const f = await features.getFeature('lamp');
    assert.deepEqual(f.properties, { on: false });
  });

  await check('http features: deleteFeature, deleteFeatures, 404 feature', async () => {
    await features.deleteFeature('sensor');
    const err = await rejects(() => features.getFeature('sensor'));
    expectHTTPError(err, 404, 'things:feature.notfound');
    await features.deleteFeatures();
    const err2 = await rejects(() => features.getFeatures());
    expectHTTPError(err2, 404, 'things:features.notfound');
  });

  await check('http things: conditional requests (If-Match / If-None-Match)', async () => {
    const created = await things.putAttribute(id, 'cond', 1);
    const etag = created.headers.get('etag');
    assert.match(etag, /^"hash:[^"]+"$/, 'sub-resource ETag');
    const ok = await things.putAttribute(id, 'cond', 2, DefaultMatchOptions.getInstance().ifMatch(etag));
    assert.equal(ok.status, 204);
    const err = await rejects(() => things.putAttribute(id, 'cond', 3, DefaultMatchOptions.getInstance().ifMatch(etag)));
    expectHTTPError(err, 412, 'things:precondition.failed');
    const t = await things.getThing(id, DefaultFieldsOptions.getInstance().withFields('_revision'));
    const rev = `"rev:${t._revision}"`;
    const okThing = await things.patchThing(new Thing(id, undefined, { cond: 4 }), DefaultMatchOptions.getInstance().ifMatch(rev));
    assert.equal(okThing.status, 204);
    const err2 = await rejects(() => things.putThing(new Thing(id), DefaultMatchOptions.getInstance().ifNoneMatchAny()));
    expectHTTPError(err2, 412, 'things:precondition.failed');
    const notModified = await rejects(() => things.getThing(id, DefaultFieldsOptions.getInstance().ifNoneMatch('*')));
    assert.equal(notModified.status, 304);
  });

  await check('http errors: not found, invalid id, unauthorized', async () => {
    const err = await rejects(() => things.getThing(`${ns}:missing`));
    expectHTTPError(err, 404, 'things:thing.notfound');
    assert.match(err.body.message, new RegExp(`${ns}:missing`));
    assert.equal(err.headers.get('content-type').split(';')[0], 'application/json');
    const bad = await rejects(() => things.getThing('no-namespace-separator'));
    expectHTTPError(bad, 400, 'things:id.invalid');
    const anon = httpClient(user, 'wrong-password').getThingsHandle();
    const unauth = await rejects(() => anon.getThing(id));
    assert.equal(unauth.status, 401);
    assert.equal(unauth.body.status, 401);
    assert.equal(typeof unauth.body.error, 'string');
  });

  await check('http things: deleteThing (204), then 404', async () => {
    const res = await things.deleteThing(id);
    assert.equal(res.status, 204);
    const err = await rejects(() => things.getThing(id));
    expectHTTPError(err, 404, 'things:thing.notfound');
  });
};
