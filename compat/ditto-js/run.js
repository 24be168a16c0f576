// Runs every Eclipse Ditto JavaScript client compatibility check against the
// node at DITTO_DOMAIN and prints "N passed, M failed".
'use strict';

const { fail, summary } = require('./lib');

const suites = [
  require('./http-things'),
  require('./http-policies'),
  require('./http-search'),
  require('./ws'),
];

// The client rejects a promise nobody handles when a socket it was told not
// to reconnect closes; that is the client's own shutdown, not a failure.
process.on('unhandledRejection', reason => {
  if (reason === 'Reconnect disabled') {
    return;
  }
  fail('unhandled rejection', reason);
});

(async () => {
  for (const suite of suites) {
    await suite();
  }
  process.exit(summary());
})().catch(err => {
  console.log(`FAIL runner: ${err && err.stack ? err.stack : JSON.stringify(err)}`);
  summary();
  process.exit(1);
});
