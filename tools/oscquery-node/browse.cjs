// Browses an OSCQuery server with npm's `oscquery` client (github.com/jangxx/node-oscquery), as
// Node tools do: HOST_INFO, the whole tree, then every method's value read back through the client.
// Usage: npm install --prefix tools/oscquery-node && node tools/oscquery-node/browse.cjs 127.0.0.1 7401
// Prints one JSON object: the host info, how many methods, and each readable method's VALUE.
"use strict";
const { OSCQueryDiscovery } = require("oscquery");

async function main() {
  const [host, port] = [process.argv[2] || "127.0.0.1", Number(process.argv[3] || 7401)];
  const service = await new OSCQueryDiscovery().queryNewService(host, port);
  const methods = service.flat();
  const values = {};
  for (const method of methods) {
    const node = service.resolvePath(method.full_path);
    const args = method.arguments || [];
    if (node === null || args.length === 0 || !("value" in args[0])) continue;
    values[method.full_path] = args.map((_, index) => node.getValue(index));
  }
  console.log(JSON.stringify({ host_info: service.hostInfo, methods: methods.length, values }));
}

main().catch((error) => { console.error(String(error)); process.exit(1); });
