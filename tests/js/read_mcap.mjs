// Reads an MCAP file with the npm MCAP libraries (nothing from cbuf) and prints what a test compares, as JSON:
// the channels with their schemas, and per channel the message count, first/last log time and decoded rows.
//   CBUF_NODE_DIR=DIR node read_mcap.mjs FILE     (DIR/node_modules holds tests/js/package.json's packages)
import { open } from "node:fs/promises";
import { createRequire } from "node:module";
import { resolve } from "node:path";

const require = createRequire(`${resolve(process.env.CBUF_NODE_DIR ?? ".")}/`);
const { McapIndexedReader } = require("@mcap/core");
const { FileHandleReadable } = require("@mcap/nodejs");
const { loadDecompressHandlers } = require("@mcap/support");

const handle = await open(process.argv[2], "r");
const reader = await McapIndexedReader.Initialize({
  readable: new FileHandleReadable(handle),
  decompressHandlers: await loadDecompressHandlers(),
});
const channels = {};
for (const [id, ch] of reader.channelsById) {
  const schema = reader.schemasById.get(ch.schemaId);
  channels[id] = {
    topic: ch.topic, messageEncoding: ch.messageEncoding, schemaName: schema?.name,
    schemaEncoding: schema?.encoding, schema: schema ? JSON.parse(new TextDecoder().decode(schema.data)) : null,
    count: 0, firstLogTime: null, lastLogTime: null, rows: [],
  };
}
const text = new TextDecoder();
for await (const msg of reader.readMessages()) {
  const c = channels[msg.channelId];
  c.count += 1;
  const t = msg.logTime.toString();  // bigint nanoseconds, exact
  if (c.firstLogTime === null) c.firstLogTime = t;
  c.lastLogTime = t;
  c.rows.push({ logTime: t, sequence: msg.sequence, data: JSON.parse(text.decode(msg.data)) });
}
const metadata = [];
for await (const m of reader.readMetadata()) metadata.push({ name: m.name, keys: [...m.metadata.keys()] });
await handle.close();
console.log(JSON.stringify({ profile: reader.header.profile, library: reader.header.library,
                             messageCount: reader.statistics?.messageCount.toString(), channels, metadata }));
