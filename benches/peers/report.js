// Node's side of `cargo bench --bench report`: one sample of one case.
//
// usage: node report.js CASE N HEAP_MIB
// prints: SECONDS PEAK_RSS_BYTES BASE_RSS_BYTES
//   SECONDS covers the N operations only, not start-up. The peak is VmHWM (this process's own
//   address space; maxRSS would include the harness's, see benches/common.rs), the base the
//   RSS (VmRSS) just before the first operation.
'use strict';
const cp = require('child_process');
const fs = require('fs');

// A kB field of /proc/self/status, in bytes.
function statusField(name) {
  const m = fs.readFileSync('/proc/self/status', 'utf8').match(new RegExp(`^${name}:\\s*(\\d+) kB`, 'm'));
  if (!m) throw new Error(`no ${name} in /proc/self/status`);
  return Number(m[1]) * 1024;
}

async function main() {
  const [caseName, nText, heapText] = process.argv.slice(2);
  const n = Number(nText);
  const heapMib = Number(heapText);
  const heap = heapMib ? Buffer.alloc(heapMib << 20, 1) : null;
  const base = statusField('VmRSS');
  const start = process.hrtime.bigint();
  if (caseName === 'spawn' || caseName === 'spawn-heap') {
    for (let i = 0; i < n; i++) {
      const r = cp.spawnSync('/bin/true');
      if (r.status !== 0) throw new Error('status ' + r.status);
    }
  } else if (caseName === 'small') {
    for (let i = 0; i < n; i++) {
      const out = cp.execFileSync('/bin/echo', ['hi']);
      if (out.toString() !== 'hi\n') throw new Error('bad output');
    }
  } else if (caseName === 'big') {
    const out = cp.execFileSync('head', ['-c', String(n), '/dev/zero'], {
      maxBuffer: 2 ** 31, encoding: 'buffer',
    });
    if (out.length !== n) throw new Error('short capture ' + out.length);
  } else if (caseName === 'fanout') {
    const all = [];
    for (let i = 0; i < n; i++) {
      all.push(new Promise((resolve, reject) => {
        const child = cp.spawn('/bin/echo', ['hello']);
        const chunks = [];
        child.stdout.on('data', (c) => chunks.push(c));
        child.on('error', reject);
        child.on('close', (code) => {
          if (code !== 0 || Buffer.concat(chunks).toString() !== 'hello\n') reject(new Error('bad child'));
          else resolve();
        });
      }));
    }
    await Promise.all(all);
  } else if (caseName === 'echo') {
    const child = cp.spawn('cat');
    let pending = '';
    let waiter = null;
    child.stdout.on('data', (c) => {
      pending += c.toString();
      const nl = pending.indexOf('\n');
      if (nl >= 0 && waiter) {
        const line = pending.slice(0, nl + 1);
        pending = pending.slice(nl + 1);
        const w = waiter; waiter = null; w(line);
      }
    });
    for (let i = 0; i < n; i++) {
      const line = await new Promise((resolve) => { waiter = resolve; child.stdin.write('line of text\n'); });
      if (line !== 'line of text\n') throw new Error('bad echo');
    }
    child.stdin.end();
    await new Promise((resolve) => child.on('close', resolve));
  } else if (caseName === 'ipc-rtt' || caseName === 'ipc-oneway') {
    // Node parent forks a Node child that echoes (rtt) or counts (oneway).
    const mode = caseName === 'ipc-rtt' ? 'rtt' : 'oneway';
    const child = cp.fork(__filename, ['ipc-child', mode], { serialization: 'json' });
    await new Promise((resolve) => child.once('message', resolve)); // ready
    const t0 = process.hrtime.bigint();
    if (caseName === 'ipc-rtt') {
      for (let i = 0; i < n; i++) {
        await new Promise((resolve) => { child.once('message', resolve); child.send({ i }); });
      }
    } else {
      const done = new Promise((resolve) => child.once('message', resolve));
      let i = 0;
      const pump = () => {
        while (i < n) {
          const ok = child.send({ i: i++ });
          if (!ok) { setImmediate(pump); return; }
        }
        child.send({ end: true });
      };
      pump();
      const got = await done;
      if (got.count !== n) throw new Error('lost messages: ' + got.count);
    }
    const secs = Number(process.hrtime.bigint() - t0) / 1e9;
    child.disconnect();
    console.log(secs, statusField('VmHWM'), base);
    return;
  } else {
    throw new Error('unknown case ' + caseName);
  }
  const secs = Number(process.hrtime.bigint() - start) / 1e9;
  void heap;
  console.log(secs, statusField('VmHWM'), base);
}

if (process.argv[2] === 'ipc-child') {
  const echo = process.argv[3] === 'rtt';
  let count = 0;
  process.on('message', (m) => {
    if (echo) process.send(m);
    else if (m.end) process.send({ count });
    else count++;
  });
  process.on('disconnect', () => process.exit(0));
  process.send({ ready: true });
} else {
  main().catch((e) => { console.error(e); process.exit(1); });
}
