// Preloaded into Portkey's Node server by scripts/bench (node --require):
// its start-server.js listens on every interface and has no option to
// choose the host, so every net.Server.listen() here is pinned to
// 127.0.0.1. The bench also checks the listening sockets before loading it.
'use strict';
const net = require('net');
const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
  if (args[0] !== null && typeof args[0] === 'object') {
    args[0] = { ...args[0], host: '127.0.0.1' };
  } else if (typeof args[1] === 'string' || args[1] === undefined) {
    args[1] = '127.0.0.1';
  } else {
    args.splice(1, 0, '127.0.0.1');
  }
  return listen.apply(this, args);
};
