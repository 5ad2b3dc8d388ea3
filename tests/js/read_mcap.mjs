// Reads an MCAP file with the npm MCAP libraries (nothing from cbuf) and prints what a test compares, as JSON:
// the channels with their schemas, and per channel the message count, first/last log time and decoded rows.
// cdr messages are decoded by Foxglove's own OMG IDL parser and CDR reader; 64-bit integers are printed as
// decimal strings, floats that JSON lacks as "nan"/"inf"/"-inf", byte arrays (char[N]) as lists of numbers.
//   CBUF_NODE_DIR=DIR node read_mcap.mjs FILE     (DIR/node_modules holds tests/js/package.json's packages)
import { open } from "node:fs/promises";
import { createRequire } from "node:module";
import { resolve } from "node:path";

const require = createRequire(`${resolve(process.env.CBUF_NODE_DIR ?? ".")}/`);
const { McapIndexedReader } = require("@mcap/core");
const { FileHandleReadable } = require("@mcap/nodejs");
const { loadDecompressHandlers } = require("@mcap/support");
const { parseIDL } = require("@foxglove/omgidl-parser");
const { MessageReader } = require("@foxglove/omgidl-serialization");

// Values of a decoded cdr message as JSON can hold them exactly.
function plain(v) {
  if (typeof v === "bigint") return v.toString();
  if (typeof v === "number") return Number.isNaN(v) ? "nan" : v === Infinity ? "inf" : v === -Infinity ? "-inf"
    : Object.is(v, -0) ? "-0" : v;
  if (ArrayBuffer.isView(v)) return Array.from(v, plain);
  if (Array.isArray(v)) return v.map(plain);
  if (v && typeof v === "object") return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, plain(x)]));
  return v;
}

const handle = await open(process.argv[2], "r");
const reader = await McapIndexedReader.Initialize({
  readable: new FileHandleReadable(handle),
  decompressHandlers: await loadDecompressHandlers(),
});
const channels = {};
const decoders = {};
for (const [id, ch] of reader.channelsById) {
  const schema = reader.schemasById.get(ch.schemaId);
  const schemaText = schema ? new TextDecoder().decode(schema.data) : null;
  channels[id] = {
    topic: ch.topic, messageEncoding: ch.messageEncoding, schemaName: schema?.name,
    schemaEncoding: schema?.encoding,
    schema: schema?.encoding === "omgidl" ? schemaText : schema ? JSON.parse(schemaText) : null,
    count: 0, firstLogTime: null, lastLogTime: null, rows: [],
  };
  if (ch.messageEncoding === "cdr") {
    const reader = new MessageReader(schema.name, parseIDL(schemaText));
    decoders[id] = (data) => plain(reader.readMessage(data));
  }
}
const text = new TextDecoder();
for await (const msg of reader.readMessages()) {
  const c = channels[msg.channelId];
  c.count += 1;
  const t = msg.logTime.toString();  // bigint nanoseconds, exact
  if (c.firstLogTime === null) c.firstLogTime = t;
  c.lastLogTime = t;
  c.rows.push({ logTime: t, sequence: msg.sequence, data: decoders[msg.channelId] ? decoders[msg.channelId](msg.data)
                                                                  : JSON.parse(text.decode(msg.data)) });
}
const metadata = [];
for await (const m of reader.readMetadata()) metadata.push({ name: m.name, keys: [...m.metadata.keys()] });
await handle.close();
console.log(JSON.stringify({ profile: reader.header.profile, library: reader.header.library,
                             messageCount: reader.statistics?.messageCount.toString(), channels, metadata }));
