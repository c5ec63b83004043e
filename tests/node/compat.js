// Drives the official Node tablestore SDK against a beam_tunnel emulator and
// prints what it read back as one JSON object (checked by
// tests/emulator/test_node_sdk.py).
//
// Usage: node compat.js <endpoint> <accessKeyId> <accessKeySecret> <instance>
'use strict';

const TableStore = require('tablestore');

const Long = TableStore.Long;
const [endpoint, accessKeyId, secretAccessKey, instancename] = process.argv.slice(2);
const client = new TableStore.Client({ accessKeyId, secretAccessKey, endpoint, instancename, maxRetries: 0 });
const TABLE = 'node_compat';
const IGNORE = new TableStore.Condition(TableStore.RowExistenceExpectation.IGNORE, null);
const EXPECT_NOT_EXIST = new TableStore.Condition(TableStore.RowExistenceExpectation.EXPECT_NOT_EXIST, null);

function plain(value) {
  if (value && typeof value.toNumber === 'function') {
    return value.toNumber();
  }
  if (Buffer.isBuffer(value)) {
    return { hex: value.toString('hex') };
  }
  return value;
}

function rowToJson(row) {
  if (!row || !row.primaryKey) {
    return null;
  }
  const key = {};
  for (const column of row.primaryKey) {
    key[column.name] = plain(column.value);
  }
  const attributes = {};
  for (const column of row.attributes || []) {
    attributes[column.columnName] = plain(column.columnValue);
  }
  return { key, attributes };
}

function pk(id, name) {
  return [{ id: Long.fromNumber(id) }, { name }];
}

async function main() {
  const out = {};
  await client.createTable({
    tableMeta: { tableName: TABLE, primaryKey: [{ name: 'id', type: 'INTEGER' }, { name: 'name', type: 'STRING' }] },
    reservedThroughput: { capacityUnit: { read: 0, write: 0 } },
    tableOptions: { timeToLive: -1, maxVersions: 2 },
    streamSpecification: { enableStream: true, expirationTime: 24 },
  });
  out.tables = (await client.listTable({})).tableNames;
  const described = await client.describeTable({ tableName: TABLE });
  out.stream = {
    enabled: described.streamDetails.enableStream,
    expiration: described.streamDetails.expirationTime,
    hasId: Boolean(described.streamDetails.streamId),
  };
  out.maxVersions = described.tableOptions.maxVersions;

  await client.putRow({
    tableName: TABLE, condition: IGNORE, primaryKey: pk(1, 'a'),
    attributeColumns: [{ s: 'text' }, { i: Long.fromNumber(-42) }, { d: 3.25 }, { b: true },
                       { bin: Buffer.from([0, 1, 255]) }],
  });
  await client.updateRow({
    tableName: TABLE, condition: IGNORE, primaryKey: pk(1, 'a'),
    updateOfAttributeColumns: [{ PUT: [{ s: 'changed' }] }, { DELETE_ALL: ['d'] }],
  });
  out.row = rowToJson((await client.getRow({ tableName: TABLE, primaryKey: pk(1, 'a'), maxVersions: 1 })).row);

  try {
    await client.putRow({ tableName: TABLE, condition: EXPECT_NOT_EXIST, primaryKey: pk(1, 'a'), attributeColumns: [{ s: 'x' }] });
    out.conditionError = null;
  } catch (err) {
    // The SDK puts the HTTP status in err.code and the raw protobuf Error
    // body (code, message) in err.message.
    out.conditionError = { status: err.code, message: String(err.message) };
  }

  const batch = await client.batchWriteRow({
    tables: [{
      tableName: TABLE,
      rows: [2, 3, 4, 5].map((id) => ({
        type: 'PUT', condition: IGNORE, primaryKey: pk(id, 'b'), attributeColumns: [{ n: Long.fromNumber(id * 10) }],
      })),
    }],
  });
  out.batchOk = batch.tables.map((row) => row.isOk);
  await client.deleteRow({ tableName: TABLE, condition: IGNORE, primaryKey: pk(5, 'b') });

  const pages = [];
  let start = [{ id: TableStore.INF_MIN }, { name: TableStore.INF_MIN }];
  for (;;) {
    const page = await client.getRange({
      tableName: TABLE, direction: TableStore.Direction.FORWARD, maxVersions: 1, limit: 2,
      inclusiveStartPrimaryKey: start, exclusiveEndPrimaryKey: [{ id: TableStore.INF_MAX }, { name: TableStore.INF_MAX }],
    });
    pages.push(page.rows.map(rowToJson));
    if (!page.nextStartPrimaryKey) {
      break;
    }
    start = page.nextStartPrimaryKey.map((column) => ({ [column.name]: column.value }));
  }
  out.pages = pages;
  process.stdout.write(JSON.stringify(out) + '\n');
}

main().catch((err) => {
  process.stderr.write(`node compat failed: ${err && (err.code || '')} ${err && (err.message || err)}\n`);
  process.exit(1);
});
