// Node <-> Node over fork() + send(), the peer in offspring's IPC benchmark.
//   node bench_node.js rt N      N round trips of {i}, one at a time
//   node bench_node.js oneway N  N messages {i} sent at once, then wait for "done"
// Prints the elapsed nanoseconds (after a warm-up round trip) on one line.
const { fork } = require('child_process');
const [mode, n] = process.argv.slice(2);
const N = Number(n);
if (mode === 'child') {
  let count = 0;
  const total = Number(process.argv[4]);
  const kind = process.argv[3];
  process.on('message', (m) => {
    if (kind === 'rt' || m === 'ping') process.send(m);
    else if (++count === total) process.send('done');
  });
} else {
  const child = fork(__filename, ['child', mode, String(N)]);
  child.once('message', () => {
    const t0 = process.hrtime.bigint();
    const done = () => {
      console.log(String(process.hrtime.bigint() - t0));
      child.disconnect();
    };
    if (mode === 'rt') {
      let i = 0;
      child.on('message', () => (++i === N ? done() : child.send({ i })));
      child.send({ i });
    } else {
      child.on('message', done);
      for (let i = 0; i < N; i++) child.send({ i });
    }
  });
  child.send('ping');
}
