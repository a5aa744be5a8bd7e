// A Node child for offspring's IPC tests: sends every message back as it came.
// - "disconnect-me": the child closes the channel itself (process.disconnect()).
// - a message that comes with a net.Server handle: answer every connection on it with
//   "hello from node\n" and reply {"gotServer": <the message>}.
// The channel closing (from either side) makes the child exit with code 7, so a test can
// tell "saw the disconnect" (7) from "crashed" (1) and "killed" (a signal).
process.on('message', (m, handle) => {
  if (handle) {
    handle.on('connection', (s) => s.end('hello from node\n'));
    process.send({ gotServer: m });
    return;
  }
  if (m === 'disconnect-me') {
    process.disconnect();
    return;
  }
  process.send(m);
});
process.on('disconnect', () => process.exit(7));
