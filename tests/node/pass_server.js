// A Node parent for offspring's IPC tests: node pass_server.js FIXTURE
// Hands a listening TCP server to the Rust fixture (`ipc-accept`) with child.send(msg,
// server), closes its own copy, connects, and expects the Rust child to answer. Prints
// "reply=<json> accepted=<bool> code=<exit code>"; exits 0 when all went right.
const net = require('net');
const { spawn } = require('child_process');
const [fixture] = process.argv.slice(2);
const child = spawn(fixture, ['ipc-accept'], { stdio: ['inherit', 'inherit', 'inherit', 'ipc'] });
let reply = '';
let accepted = false;
let ended = false;
const maybeDone = () => {
  if (accepted && ended) child.disconnect();
};
child.on('message', (m) => {
  accepted = m.accepted === true;
  maybeDone();
});
child.on('exit', (code) => {
  console.log(`reply=${JSON.stringify(reply)} accepted=${accepted} code=${code}`);
  process.exit(reply === 'hello from rust\n' && accepted && code === 0 ? 0 : 1);
});
const server = net.createServer();
server.listen(0, '127.0.0.1', () => {
  const { port } = server.address();
  child.send({ port }, server, (err) => {
    if (err) throw err;
    server.close(); // from here on only the child listens
    const c = net.connect(port, '127.0.0.1');
    c.on('data', (d) => (reply += d));
    c.on('end', () => {
      ended = true;
      maybeDone();
    });
  });
});
