package compat;

import com.alicloud.openservices.tablestore.SyncClient;
import com.alicloud.openservices.tablestore.model.BatchWriteRowRequest;
import com.alicloud.openservices.tablestore.model.BatchWriteRowResponse;
import com.alicloud.openservices.tablestore.model.Column;
import com.alicloud.openservices.tablestore.model.ColumnValue;
import com.alicloud.openservices.tablestore.model.CreateTableRequest;
import com.alicloud.openservices.tablestore.model.DeleteRowRequest;
import com.alicloud.openservices.tablestore.model.PrimaryKey;
import com.alicloud.openservices.tablestore.model.PrimaryKeyBuilder;
import com.alicloud.openservices.tablestore.model.PrimaryKeyType;
import com.alicloud.openservices.tablestore.model.PrimaryKeyValue;
import com.alicloud.openservices.tablestore.model.RowDeleteChange;
import com.alicloud.openservices.tablestore.model.RowPutChange;
import com.alicloud.openservices.tablestore.model.RowUpdateChange;
import com.alicloud.openservices.tablestore.model.StreamSpecification;
import com.alicloud.openservices.tablestore.model.TableMeta;
import com.alicloud.openservices.tablestore.model.TableOptions;
import com.alicloud.openservices.tablestore.model.UpdateRowRequest;
import com.google.gson.JsonArray;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;

/**
 * Creates a table (one STRING key column "id", a stream kept 24 h) and
 * applies changes through the table API: ["put", key, n] puts the columns of
 * {@link #putColumns}, ["update", key, n] updates n and s, ["delete", key]
 * deletes the row. Consecutive puts go in one BatchWriteRow of up to 200 rows.
 */
final class Tables {
    private Tables() {
    }

    static void write(JsonObject command) {
        String table = Commands.text(command, "table");
        SyncClient client = new SyncClient(Commands.text(command, "endpoint"), Commands.text(command, "key_id"),
            Commands.text(command, "key_secret"), Commands.text(command, "instance"));
        try {
            if (Commands.flag(command, "create", false)) {
                TableMeta meta = new TableMeta(table);
                meta.addPrimaryKeyColumn("id", PrimaryKeyType.STRING);
                CreateTableRequest request = new CreateTableRequest(meta, new TableOptions(-1, 1));
                request.setStreamSpecification(new StreamSpecification(true, 24));
                client.createTable(request);
            }
            int written = 0;
            BatchWriteRowRequest batch = new BatchWriteRowRequest();
            JsonArray changes = command.has("changes") ? command.getAsJsonArray("changes") : new JsonArray();
            for (JsonElement element : changes) {
                JsonArray change = element.getAsJsonArray();
                String op = change.get(0).getAsString();
                PrimaryKey key = PrimaryKeyBuilder.createPrimaryKeyBuilder()
                    .addPrimaryKeyColumn("id", PrimaryKeyValue.fromString(change.get(1).getAsString())).build();
                long n = change.size() > 2 ? change.get(2).getAsLong() : 0;
                if ("put".equals(op)) {
                    RowPutChange put = new RowPutChange(table, key);
                    for (Column column : putColumns(n)) {
                        put.addColumn(column);
                    }
                    batch.addRowChange(put);
                    if (batch.getRowsCount() == 200) {
                        batch = flush(client, batch);
                    }
                } else if ("update".equals(op)) {
                    batch = flush(client, batch);
                    RowUpdateChange update = new RowUpdateChange(table, key);
                    update.put(new Column("n", ColumnValue.fromLong(n)));
                    update.put(new Column("s", ColumnValue.fromString("updated-" + n)));
                    client.updateRow(new UpdateRowRequest(update));
                } else if ("delete".equals(op)) {
                    batch = flush(client, batch);
                    client.deleteRow(new DeleteRowRequest(new RowDeleteChange(table, key)));
                } else {
                    throw new IllegalArgumentException("unknown change '" + op + "' in " + change);
                }
                written++;
            }
            flush(client, batch);
            JsonObject done = new JsonObject();
            done.addProperty("event", "done");
            done.addProperty("written", written);
            Output.emit(Commands.text(command, "id"), done);
        } finally {
            client.shutdown();
        }
    }

    /** One column of each value type, all derived from n so a reader can check what it decodes. */
    static Column[] putColumns(long n) {
        return new Column[] {
            new Column("n", ColumnValue.fromLong(n)),
            new Column("s", ColumnValue.fromString("row-" + n)),
            new Column("f", ColumnValue.fromDouble(n / 2.0)),
            new Column("b", ColumnValue.fromBoolean(n % 2 == 0)),
            new Column("raw", ColumnValue.fromBinary(new byte[] {(byte) n, (byte) (n >> 8), (byte) 0xff})),
        };
    }

    private static BatchWriteRowRequest flush(SyncClient client, BatchWriteRowRequest batch) {
        if (batch.getRowsCount() == 0) {
            return batch;
        }
        BatchWriteRowResponse response = client.batchWriteRow(batch);
        if (!response.isAllSucceed()) {
            throw new IllegalStateException("BatchWriteRow failed rows: " + response.getFailedRows());
        }
        return new BatchWriteRowRequest();
    }
}
