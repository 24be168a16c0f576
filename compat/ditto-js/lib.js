// Shared helpers of the Eclipse Ditto JavaScript client compatibility checks:
// the client factories, a tiny check runner and assertions.
'use strict';

const assert = require('node:assert/strict');
const {
  DittoNodeClient,
  NodeHttpBasicAuth,
  NodeWebSocketBasicAuth,
} = require('@eclipse-ditto/ditto-javascript-client-node');

const domain = process.env.DITTO_DOMAIN || '127.0.0.1:8080';
const user = process.env.DITTO_USER || 'ditto';
const password = process.env.DITTO_PASSWORD || 'ditto';
const user2 = process.env.DITTO_USER2 || 'alice';
const password2 = process.env.DITTO_PASSWORD2 || 'alicepw';

// A run-unique namespace keeps reruns against one node independent.
const ns = process.env.DITTO_NS || `compat.js${Date.now().toString(36)}`;

function httpClient(name = user, pw = password) {
  return DittoNodeClient.newHttpClient()
    .withoutTls()
    .withDomain(domain)
    .withAuthProvider(NodeHttpBasicAuth.newInstance(name, pw))
    .build();
}

// wsClient connects and resolves once the socket is open (the client itself
// only exposes the connection through its state handler).
function wsClient({ live = false, name = user, pw = password } = {}) {
  return new Promise((resolve, reject) => {
    let client;
    const timer = setTimeout(() => reject(new Error('websocket did not connect in 5s')), 5000);
    const builder = DittoNodeClient.newWebSocketClient()
      .withoutTls()
      .withDomain(domain)
      .withAuthProvider(NodeWebSocketBasicAuth.newInstance(name, pw))
      .withoutBuffer()
      .withReconnect(false)
      .withStateHandler({
        connected: () => { clearTimeout(timer); setImmediate(() => resolve(client)); },
        disconnected: () => { clearTimeout(timer); reject(new Error('websocket disconnected')); },
        reconnecting: () => {},
        buffering: () => {},
        backPressure: () => {},
        bufferFull: () => {},
      });
    client = (live ? builder.liveChannel() : builder.twinChannel()).build();
  });
}

const results = { passed: 0, failed: 0, failures: [] };

async function check(name, fn) {
  try {
    await withTimeout(Promise.resolve().then(fn), 15000, name);
    results.passed++;
    console.log(`ok   ${name}`);
  } catch (err) {
    results.failed++;
    results.failures.push(name);
    console.log(`FAIL ${name}: ${describe(err)}`);
  }
}

// fail records a failure found outside of a check.
function fail(name, err) {
  results.failed++;
  results.failures.push(name);
  console.log(`FAIL ${name}: ${describe(err)}`);
}

function describe(err) {
  if (err instanceof Error) {
    return err.message.split('\n').slice(0, 6).join(' | ');
  }
  if (err && err.status !== undefined) {
    return `status ${err.status} ${JSON.stringify(err.body !== undefined ? err.body : err)}`;
  }
  return JSON.stringify(err);
}

function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: timed out after ${ms}ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

// rejects runs fn and returns what it rejected with; it fails when fn resolves.
async function rejects(fn) {
  try {
    await fn();
  } catch (err) {
    return err;
  }
  throw new Error('expected a rejection, got success');
}

// expectHTTPError checks a BasicErrorResponse of the HTTP client: the status
// and the Ditto error JSON (status, error, message).
function expectHTTPError(err, status, code) {
  assert.equal(err.status, status, `status of ${JSON.stringify(err.body)}`);
  assert.equal(typeof err.body, 'object', 'error body is JSON');
  assert.equal(err.body.status, status, 'body.status');
  if (code) {
    assert.equal(err.body.error, code, 'body.error');
  }
  assert.equal(typeof err.body.message, 'string', 'body.message');
}

// waitFor polls until fn returns a truthy value or the deadline passes.
async function waitFor(fn, ms = 5000, what = 'condition') {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = fn();
    if (v) {
      return v;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${what}`);
    }
    await new Promise(r => setTimeout(r, 20));
  }
}

// rawGet is a plain HTTP GET for what the client cannot express (desired
// properties): status and parsed JSON body.
async function rawGet(path, name = user, pw = password) {
  const auth = Buffer.from(`${name}:${pw}`).toString('base64');
  const res = await fetch(`http://${domain}${path}`, { headers: { authorization: `Basic ${auth}` } });
  const text = await res.text();
  return { status: res.status, body: text === '' ? undefined : JSON.parse(text) };
}

function summary() {
  console.log(`${results.passed} passed, ${results.failed} failed`);
  if (results.failed > 0) {
    console.log(`failed: ${results.failures.join('; ')}`);
  }
  return results.failed === 0 ? 0 : 1;
}

module.exports = {
  assert, check, fail, rejects, expectHTTPError, waitFor, summary, httpClient, wsClient, rawGet,
  ns, domain, user, password, user2, password2,
};
