// A Node parent for offspring's IPC tests: node parent.js FIXTURE SUBCOMMAND N
// Forks the Rust fixture with an IPC channel (as fork() does: 'ipc' at fd 3), sends N
// messages {i, s}, checks that they come back in order, then disconnects. Prints
// "received=<count> code=<child's exit code>" and exits 0 only if all came back and the
// child exited 0.
const { spawn } = require('child_process');
const [fixture, sub, n] = process.argv.slice(2);
const N = Number(n);
const child = spawn(fixture, [sub], { stdio: ['inherit', 'inherit', 'inherit', 'ipc'] });
let next = 0;
let bad = null;
child.on('message', (m) => {
  if (bad === null && (m.i !== next || m.s !== 'é\u2028"\n')) bad = JSON.stringify(m);
  next++;
  if (next === N) child.disconnect();
});
child.on('exit', (code, signal) => {
  console.log(`received=${next} code=${code} signal=${signal} bad=${bad}`);
  process.exit(next === N && code === 0 && bad === null ? 0 : 1);
});
for (let i = 0; i < N; i++) child.send({ i, s: 'é\u2028"\n' });
