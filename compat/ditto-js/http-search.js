// Search over HTTP with the official client: filters, options, count, POST
// form search, cursor paging.
'use strict';

const {
  Thing, SearchThingsResponse, DefaultSearchOptions, DefaultCountOptions,
  And, Or, Not, Eq, Ne, Gt, Ge, Lt, Le, In, Like, ILike, Exists,
} = require('@eclipse-ditto/ditto-javascript-client-node');
const { assert, check, rejects, expectHTTPError, httpClient, user2, password2, ns } = require('./lib');

module.exports = async function httpSearch() {
  const client = httpClient();
  const things = client.getThingsHandle();
  const search = client.getSearchHandle();
  const sns = `${ns}.search`;
  const ids = [];

  await check('http search: setup of five things', async () => {
    for (let i = 0; i < 5; i++) {
      const id = `${sns}:s${i}`;
      ids.push(id);
      await things.putThing(new Thing(id, undefined,
        { n: i, even: i % 2 === 0, name: `Item-${i}`, tags: ['t', `t${i}`] }));
    }
  });

  const inNs = () => DefaultSearchOptions.getInstance().withNamespaces(sns);

  await check('http search: search returns SearchThingsResponse', async () => {
    const res = await search.search(inNs());
    assert.ok(res instanceof SearchThingsResponse);
    assert.equal(res.items.length, 5);
    assert.ok(res.items.every(t => t instanceof Thing));
    assert.deepEqual(res.items.map(t => t.thingId).sort(), ids);
  });

  await check('http search: filter operators (eq, ne, gt, ge, lt, le, in, like, ilike, exists, and, or, not)', async () => {
    const cases = [
      [Eq('attributes/n', 2), 1],
      [Ne('attributes/n', 2), 4],
      [Gt('attributes/n', 2), 2],
      [Ge('attributes/n', 2), 3],
      [Lt('attributes/n', 2), 2],
      [Le('attributes/n', 2), 3],
      [In('attributes/n', 0, 4, 9), 2],
      [Like('attributes/name', 'Item-*'), 5],
      [ILike('attributes/name', 'item-?'), 5],
      [Exists('attributes/even'), 5],
      [Eq('attributes/even', true), 3],
      [And(Gt('attributes/n', 0), Eq('attributes/even', true)), 2],
      [Or(Eq('attributes/n', 1), Eq('attributes/n', 3)), 2],
      [Not(Eq('attributes/even', true)), 2],
      [Eq('attributes/tags', 't3'), 1],
      [Eq('thingId', `${sns}:s1`), 1],
    ];
    for (const [filter, want] of cases) {
      const res = await search.search(inNs().withFilter(filter));
      assert.equal(res.items.length, want, `${filter.toString()}`);
    }
  });

  await check('http search: raw filter with special characters', async () => {
    const res = await search.search(inNs().withRawFilter('and(eq(attributes/name,"Item-1"),like(attributes/name,"*-1"))'));
    assert.equal(res.items.length, 1);
    assert.equal(res.items[0].thingId, `${sns}:s1`);
  });

  await check('http search: sort, limit and nextPageOffset', async () => {
    const res = await search.search(inNs().withSort('-attributes/n').withLimit(0, 2));
    assert.deepEqual(res.items.map(t => t.attributes.n), [4, 3]);
    assert.equal(res.nextPageOffset, 2);
    const last = await search.search(inNs().withSort('-attributes/n').withLimit(4, 2));
    assert.deepEqual(last.items.map(t => t.attributes.n), [0]);
    assert.ok([undefined, -1].includes(last._nextPageOffset), `last page nextPageOffset ${last._nextPageOffset}`);
  });

  await check('http search: fields', async () => {
    const res = await search.search(inNs().withFilter(Eq('attributes/n', 1)).withFields('thingId', 'attributes/name'));
    assert.deepEqual(res.items[0].toObject(), { thingId: `${sns}:s1`, attributes: { name: 'Item-1' } });
  });

  await check('http search: cursor paging with size', async () => {
    const seen = [];
    let opts = inNs().withSort('+attributes/n').withPageSize(2);
    let res = await search.search(opts);
    seen.push(...res.items.map(t => t.attributes.n));
    for (let guard = 0; res.cursor !== '' && guard < 5; guard++) {
      opts = inNs().withSort('+attributes/n').withPageSize(2).withCursor(res.cursor);
      res = await search.search(opts);
      seen.push(...res.items.map(t => t.attributes.n));
    }
    assert.deepEqual(seen, [0, 1, 2, 3, 4]);
  });

  await check('http search: count', async () => {
    assert.equal(await search.count(DefaultCountOptions.getInstance().withNamespaces(sns)), 5);
    const n = await search.count(DefaultCountOptions.getInstance().withNamespaces(sns).withFilter(Eq('attributes/even', true)));
    assert.equal(n, 3);
    const raw = await search.count(DefaultCountOptions.getInstance().withNamespaces(sns).withRawFilter('gt(attributes/n,2)'));
    assert.equal(raw, 2);
  });

  await check('http search: postSearch and postCount (form body)', async () => {
    const res = await search.postSearch(inNs().withFilter(Eq('attributes/even', false)).withSort('+attributes/n'));
    assert.deepEqual(res.items.map(t => t.attributes.n), [1, 3]);
    const n = await search.postCount(DefaultCountOptions.getInstance().withNamespaces(sns).withFilter(Lt('attributes/n', 3)));
    assert.equal(n, 3);
  });

  await check('http search: a user without READ sees nothing', async () => {
    const other = httpClient(user2, password2).getSearchHandle();
    const res = await other.search(inNs());
    assert.equal(res.items.length, 0);
    assert.equal(await other.count(DefaultCountOptions.getInstance().withNamespaces(sns)), 0);
  });

  await check('http search: invalid filter is 400 with Ditto error JSON', async () => {
    const err = await rejects(() => search.search(inNs().withRawFilter('eq(attributes/n')));
    expectHTTPError(err, 400, 'rql.expression.invalid');
    const opt = await rejects(() => search.search(inNs().withRawFilter('unknownop(attributes/n,1)')));
    expectHTTPError(opt, 400, 'rql.expression.invalid');
  });

  await check('http search: cleanup', async () => {
    for (const id of ids) {
      await things.deleteThing(id);
    }
    assert.equal(await search.count(DefaultCountOptions.getInstance().withNamespaces(sns)), 0);
  });
};
