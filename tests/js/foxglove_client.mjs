// A Foxglove WebSocket client built from npm's @foxglove/ws-protocol (nothing from cbuf): connects, prints the
// advertised channels, subscribes to TOPIC and prints the first COUNT messages it receives, as JSON lines
// (cdr messages decoded by Foxglove's OMG IDL parser and CDR reader; 64-bit integers as decimal strings).
//   CBUF_NODE_DIR=DIR node foxglove_client.mjs ws://127.0.0.1:PORT TOPIC COUNT
import { createRequire } from "node:module";
import { resolve } from "node:path";

const require = createRequire(`${resolve(process.env.CBUF_NODE_DIR ?? ".")}/`);
const { FoxgloveClient } = require("@foxglove/ws-protocol");
const WebSocket = require("ws");
const { parseIDL } = require("@foxglove/omgidl-parser");
const { MessageReader } = require("@foxglove/omgidl-serialization");
const plain = (v) => typeof v === "bigint" ? v.toString() : ArrayBuffer.isView(v) ? Array.from(v, plain)
  : Array.isArray(v) ? v.map(plain) : v && typeof v === "object"
    ? Object.fromEntries(Object.entries(v).map(([k, x]) => [k, plain(x)])) : v;

const [url, topic, count] = process.argv.slice(2);
// foxglove-sdk servers speak "foxglove.sdk.v1", the successor of the "foxglove.websocket.v1" this client
// names; the messages it uses here (serverInfo, advertise, subscribe, message data) are the same in both.
const client = new FoxgloveClient({ ws: new WebSocket(url, ["foxglove.sdk.v1", FoxgloveClient.SUPPORTED_SUBPROTOCOL]) });
const text = new TextDecoder();
let subscription = null;
let decode = null;
let received = 0;
const timer = setTimeout(() => { console.error("timed out"); process.exit(2); }, 20000);

client.on("serverInfo", (info) => console.log(JSON.stringify({ serverInfo: info.name })));
client.on("advertise", (channels) => {
  console.log(JSON.stringify({ advertise: channels.map((c) => ({ topic: c.topic, encoding: c.encoding,
    schemaName: c.schemaName, schemaEncoding: c.schemaEncoding, schema: c.schema })) }));
  const ch = channels.find((c) => c.topic === topic);
  if (ch && subscription === null) {
    subscription = client.subscribe(ch.id);
    if (ch.encoding === "cdr") {
      const reader = new MessageReader(ch.schemaName, parseIDL(ch.schema));
      decode = (d) => plain(reader.readMessage(d));
    }
  }
});
client.on("message", (m) => {
  if (m.subscriptionId !== subscription) return;
  const data = decode ? decode(m.data) : JSON.parse(text.decode(m.data));
  console.log(JSON.stringify({ message: data, timestamp: m.timestamp.toString() }));
  if (++received >= Number(count)) {
    clearTimeout(timer);
    client.close();
    process.exit(0);
  }
});
client.on("error", (e) => { console.error(`error: ${e}`); process.exit(1); });
