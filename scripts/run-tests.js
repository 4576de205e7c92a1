'use strict';
// Runs every compiled *.test.js under dist/test with node's test runner
// (Node 20's runner would also pick up the helpers as tests). A compiled test
// whose TypeScript source is gone (renamed or deleted since the last build)
// is left out: tsc never removes outputs.
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..', 'dist', 'test');
const sources = path.resolve(__dirname, '..', 'test');
const files = [];
(function walk(dir) {
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) walk(p);
    else if (e.name.endsWith('.test.js') && fs.existsSync(path.join(sources, path.relative(root, p)).replace(/\.js$/, '.ts'))) files.push(p);
  }
})(root);
files.sort();
const r = spawnSync(process.execPath, ['--test', '--test-concurrency=1', ...process.argv.slice(2), ...files], { stdio: 'inherit' });
process.exit(r.status ?? 1);
