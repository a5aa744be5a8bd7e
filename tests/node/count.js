// A Node child for offspring's IPC benchmark: node count.js N
// Echoes "ping" (so the parent can wait until the child is up), counts every other message,
// and sends "done" after N of them.
const N = Number(process.argv[2]);
let n = 0;
process.on('message', (m) => {
  if (m === 'ping') process.send(m);
  else if (++n === N) process.send('done');
});
