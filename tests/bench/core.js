// `scripts/bench core`: the drive pipeline natively, as wasm in headless
// Chromium (scalar and simd128 builds), and a pure-JavaScript baseline, in
// one run on this machine. Prints a table and writes bench/results/core.json.

import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { CHROMIUM, REPO } from '../harness/paths.js';

const NATIVE_MIB = Number(process.env.BENCH_NATIVE_MIB ?? 256);
const WASM_MIB = Number(process.env.BENCH_WASM_MIB ?? 64);
const JS_MIB = Number(process.env.BENCH_JS_MIB ?? 16);
/** Raw RTCDataChannel rate between two Chromiums here (design.md); `scripts/bench link` measures it. */
const RAW_DATACHANNEL_MBPS = 16;

const out = fs.mkdtempSync(path.join(os.tmpdir(), 'mailmesh-bench-'));
const run = (cmd, args, env = {}) => execFileSync(cmd, args, { cwd: REPO, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] }).toString();

function buildWasm(variant) {
  run('scripts/build-wasm.sh', [], { MAILMESH_WASM_VARIANT: variant, MAILMESH_WASM_OUT: path.join(out, variant) });
}

function serve() {
  const roots = {
    '/bench/': path.join(REPO, 'tests/bench/page'),
    '/noble/ciphers/': path.join(REPO, 'tests/node_modules/@noble/ciphers'),
    '/noble/hashes/': path.join(REPO, 'tests/node_modules/@noble/hashes'),
    '/wasm/': out,
  };
  const types = { '.js': 'text/javascript', '.wasm': 'application/wasm', '.html': 'text/html' };
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://x');
    const prefix = Object.keys(roots).find((p) => url.pathname.startsWith(p));
    const file = prefix && path.join(roots[prefix], path.normalize(url.pathname.slice(prefix.length)));
    if (!file || !file.startsWith(roots[prefix]) || !fs.existsSync(file)) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-type': types[path.extname(file)] ?? 'application/octet-stream' });
    fs.createReadStream(file).pipe(res);
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

console.log(`native: ${NATIVE_MIB} MiB …`);
const native = JSON.parse(run('cargo', ['run', '-q', '--release', '-p', 'mailmesh-core', '--example', 'bench_core', '--', String(NATIVE_MIB)]));
console.log('wasm builds: scalar, simd128 …');
buildWasm('scalar');
buildWasm('simd128');

const server = await serve();
const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update'] });
const wasm = {};
let js;
try {
  const page = await browser.newPage();
  await page.goto(`http://127.0.0.1:${server.address().port}/bench/core-bench.html`);
  await page.waitForFunction(() => window.benchReady === true);
  for (const variant of ['scalar', 'simd128']) {
    console.log(`wasm ${variant}: ${WASM_MIB} MiB …`);
    wasm[variant] = await page.evaluate(([url, mib]) => window.benchWasm(url, mib), [`/wasm/${variant}/mailmesh_core.js`, WASM_MIB]);
  }
  console.log(`JavaScript baseline: ${JS_MIB} MiB …`);
  js = await page.evaluate((mib) => window.benchJs(mib), JS_MIB);
} finally {
  await browser.close();
  server.close();
  fs.rmSync(out, { recursive: true, force: true });
}

const bestVariant = wasm.simd128.encode_mbps > wasm.scalar.encode_mbps ? 'simd128' : 'scalar';
const r1 = (x) => Math.round(x * 10) / 10;
const r2 = (x) => Math.round(x * 100) / 100;
const results = {
  machine: { cpus: os.cpus().length, model: os.cpus()[0]?.model },
  params: { k: 4, m: 2, chunk_size: 1048576 },
  native_encode_mbps: r1(native.encode_mbps),
  native_decode_mbps: r1(native.decode_mbps),
  native_decode_with_reconstruction_mbps: r1(native.decode_with_reconstruction_mbps),
  wasm_variant: bestVariant,
  wasm_encode_mbps: r1(wasm[bestVariant].encode_mbps),
  wasm_decode_mbps: r1(wasm[bestVariant].decode_mbps),
  wasm_scalar: { encode_mbps: r1(wasm.scalar.encode_mbps), decode_mbps: r1(wasm.scalar.decode_mbps) },
  wasm_simd128: { encode_mbps: r1(wasm.simd128.encode_mbps), decode_mbps: r1(wasm.simd128.decode_mbps) },
  js_encode_mbps: r1(js.encode_mbps),
  js_decode_mbps: r1(js.decode_mbps),
  raw_datachannel_reference_mbps: RAW_DATACHANNEL_MBPS,
};
results.wasm_vs_native = r2(results.wasm_encode_mbps / results.native_encode_mbps);
results.wasm_vs_js = r2(results.wasm_encode_mbps / results.js_encode_mbps);
results.wasm_decode_vs_native = r2(results.wasm_decode_mbps / results.native_decode_mbps);
results.slowest_vs_datachannel = r1(Math.min(results.wasm_encode_mbps, results.wasm_decode_mbps, results.native_encode_mbps, results.native_decode_mbps) / RAW_DATACHANNEL_MBPS);

const mark = (ok) => (ok ? 'meets' : 'MISSES');
console.log(`
pipeline (MB/s)        encode   decode
native                 ${String(results.native_encode_mbps).padStart(6)}   ${String(results.native_decode_mbps).padStart(6)}
wasm scalar            ${String(results.wasm_scalar.encode_mbps).padStart(6)}   ${String(results.wasm_scalar.decode_mbps).padStart(6)}
wasm simd128           ${String(results.wasm_simd128.encode_mbps).padStart(6)}   ${String(results.wasm_simd128.decode_mbps).padStart(6)}
JavaScript baseline    ${String(results.js_encode_mbps).padStart(6)}   ${String(results.js_decode_mbps).padStart(6)}

wasm vs native (encode)   ${results.wasm_vs_native}x   target >= 0.6x: ${mark(results.wasm_vs_native >= 0.6)}
wasm vs native (decode)   ${results.wasm_decode_vs_native}x   target >= 0.6x: ${mark(results.wasm_decode_vs_native >= 0.6)}
wasm vs JS (encode)       ${results.wasm_vs_js}x   target >= 3x: ${mark(results.wasm_vs_js >= 3)}
slowest vs data channel   ${results.slowest_vs_datachannel}x   target >= 10x: ${mark(results.slowest_vs_datachannel >= 10)}
`);
fs.mkdirSync(path.join(REPO, 'bench/results'), { recursive: true });
fs.writeFileSync(path.join(REPO, 'bench/results/core.json'), `${JSON.stringify(results, null, 2)}\n`);
console.log('wrote bench/results/core.json');
