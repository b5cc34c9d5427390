// Loaded with `node --require` before a client runs: every TCP connection this process opens
// leaves from $IMDS_CLIENT_SOURCE, as a VM's requests leave from its own address. The clients'
// code is untouched; only the socket's local address is chosen.
"use strict";
const http = require("node:http");
const net = require("node:net");

const source = process.env.IMDS_CLIENT_SOURCE;
if (!source) {
  throw new Error("bind_source.cjs: set IMDS_CLIENT_SOURCE to the address to connect from");
}
const connect = net.createConnection;
function bound(...args) {
  if (args[0] !== null && typeof args[0] === "object") {
    args[0] = { ...args[0], localAddress: source };
  }
  return connect.apply(net, args);
}
net.createConnection = bound;
net.connect = bound;
http.Agent.prototype.createConnection = bound;
