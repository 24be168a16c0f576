// Policies over HTTP with the official client.
'use strict';

const {
  Policy, Entry, Subject, SubjectId, Resource, Thing, DittoSubjectIssuer,
} = require('@eclipse-ditto/ditto-javascript-client-node');
const {
  assert, check, rejects, expectHTTPError, httpClient, ns, user, user2, password2,
} = require('./lib');

function ownerEntry(label, subjectId) {
  return new Entry(label,
    { [subjectId]: new Subject(SubjectId.fromString(subjectId), 'owner') },
    {
      'thing:/': new Resource('thing:/', ['READ', 'WRITE'], []),
      'policy:/': new Resource('policy:/', ['READ', 'WRITE'], []),
      'message:/': new Resource('message:/', ['READ', 'WRITE'], []),
    });
}

module.exports = async function httpPolicies() {
  const client = httpClient();
  const policies = client.getPoliciesHandle();
  const id = `${ns}:http-policy`;
  const me = SubjectId.fromIssuerAndId(DittoSubjectIssuer.NGINX, user).toString();
  const alice = `nginx:${user2}`;

  await check('http policies: putPolicy creates (201, Policy body)', async () => {
    const policy = new Policy(id, { owner: ownerEntry('owner', me) });
    const res = await policies.putPolicy(policy);
    assert.equal(res.status, 201);
    assert.ok(res.body instanceof Policy);
    assert.equal(res.body.id, id);
    assert.deepEqual(res.body.entries.owner.resources['thing:/'].grant, ['READ', 'WRITE']);
    assert.equal(res.headers.get('etag'), '"rev:1"');
  });

  await check('http policies: getPolicy, getEntries, getEntry', async () => {
    const p = await policies.getPolicy(id);
    assert.equal(p.id, id);
    assert.ok(p.entries.owner instanceof Entry);
    assert.equal(p.entries.owner.id, 'owner');
    const entries = await policies.getEntries(id);
    assert.deepEqual(Object.keys(entries), ['owner']);
    const entry = await policies.getEntry(id, 'owner');
    assert.equal(entry.id, 'owner');
    assert.equal(entry.subjects[me].type, 'owner');
    assert.equal(entry.subjects[me].id, me);
  });

  await check('http policies: putEntry creates (201) and updates (204)', async () => {
    const reader = new Entry('reader',
      { [alice]: new Subject(SubjectId.fromString(alice), 'reader') },
      { 'thing:/attributes': new Resource('thing:/attributes', ['READ'], []) });
    let res = await policies.putEntry(id, reader);
    assert.equal(res.status, 201);
    assert.equal(res.body.id, 'reader');
    res = await policies.putEntry(id, reader);
    assert.equal(res.status, 204);
  });

  await check('http policies: subjects get/put/delete', async () => {
    const subjects = await policies.getSubjects(id, 'reader');
    assert.deepEqual(Object.keys(subjects), [alice]);
    const one = await policies.getSubject(id, 'reader', alice);
    assert.equal(one.type, 'reader');
    const extra = 'nginx:bob';
    let res = await policies.putSubject(id, 'reader', new Subject(SubjectId.fromString(extra), 'extra'));
    assert.equal(res.status, 201);
    assert.equal(res.body.id, extra);
    assert.equal(res.body.type, 'extra');
    res = await policies.putSubjects(id, 'reader', {
      [alice]: new Subject(SubjectId.fromString(alice), 'reader'),
      [extra]: new Subject(SubjectId.fromString(extra), 'extra2'),
    });
    assert.equal(res.status, 204);
    const del = await policies.deleteSubject(id, 'reader', extra);
    assert.equal(del.status, 204);
    const err = await rejects(() => policies.getSubject(id, 'reader', extra));
    expectHTTPError(err, 404, 'policies:subject.notfound');
  });

  await check('http policies: resources get/put/delete', async () => {
    const resources = await policies.getResources(id, 'reader');
    assert.deepEqual(Object.keys(resources), ['thing:/attributes']);
    const r = await policies.getResource(id, 'reader', 'thing:/attributes');
    assert.deepEqual(r.grant, ['READ']);
    assert.deepEqual(r.revoke, []);
    let res = await policies.putResource(id, 'reader', new Resource('thing:/features', ['READ'], []));
    assert.equal(res.status, 201);
    assert.equal(res.body.id, 'thing:/features');
    res = await policies.putResources(id, 'reader', {
      'thing:/attributes': new Resource('thing:/attributes', ['READ'], ['WRITE']),
    });
    assert.equal(res.status, 204);
    const del = await policies.deleteResource(id, 'reader', 'thing:/attributes');
    assert.equal(del.status, 204);
    const err = await rejects(() => policies.getResource(id, 'reader', 'thing:/attributes'));
    expectHTTPError(err, 404, 'policies:resource.notfound');
  });

  await check('http policies: putEntries replaces all entries (204)', async () => {
    const res = await policies.putEntries(id, {
      owner: ownerEntry('owner', me),
      reader: new Entry('reader',
        { [alice]: new Subject(SubjectId.fromString(alice), 'reader') },
        { 'thing:/attributes': new Resource('thing:/attributes', ['READ'], []) }),
    });
    assert.equal(res.status, 204);
    assert.deepEqual(Object.keys(await policies.getEntries(id)).sort(), ['owner', 'reader']);
  });

  await check('http policies: a thing under the policy enforces it for a second user', async () => {
    const things = client.getThingsHandle();
    const thingId = `${ns}:policed`;
    await things.putThing(new Thing(thingId, id, { visible: 1 }, { secret: { toObject: () => ({ properties: { pin: 1234 } }) } }));
    const asAlice = httpClient(user2, password2).getThingsHandle();
    const t = await asAlice.getThing(thingId);
    assert.deepEqual(t.attributes, { visible: 1 });
    assert.equal(t.features, undefined);
    const denied = await rejects(() => asAlice.putAttribute(thingId, 'visible', 2));
    expectHTTPError(denied, 403, 'things:attribute.notmodifiable');
    const hidden = await rejects(() => asAlice.getAttribute(thingId, 'nope'));
    expectHTTPError(hidden, 404, 'things:attribute.notfound');
    await things.deleteThing(thingId);
  });

  await check('http policies: errors (404 policy, 403 lockout, 400 invalid)', async () => {
    const err = await rejects(() => policies.getPolicy(`${ns}:missing`));
    expectHTTPError(err, 404, 'policies:policy.notfound');
    const lockout = await rejects(() => policies.deleteEntry(id, 'owner'));
    expectHTTPError(lockout, 403, 'policies:entry.modificationinvalid');
    const invalid = await rejects(() => policies.putPolicy(new Policy('invalid id', { owner: ownerEntry('owner', me) })));
    assert.equal(invalid.status, 400);
    assert.equal(invalid.body.status, 400);
  });

  await check('http policies: deleteEntry and deletePolicy (204), then 404', async () => {
    let res = await policies.deleteEntry(id, 'reader');
    assert.equal(res.status, 204);
    const gone = await rejects(() => policies.getEntry(id, 'reader'));
    expectHTTPError(gone, 404, 'policies:entry.notfound');
    res = await policies.deletePolicy(id);
    assert.equal(res.status, 204);
    const err = await rejects(() => policies.getPolicy(id));
    expectHTTPError(err, 404, 'policies:policy.notfound');
  });
};
