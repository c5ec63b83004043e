package compat;

import com.alicloud.openservices.tablestore.model.Column;
import com.alicloud.openservices.tablestore.model.ColumnValue;
import com.alicloud.openservices.tablestore.model.PrimaryKeyColumn;
import com.alicloud.openservices.tablestore.model.PrimaryKeyValue;
import com.alicloud.openservices.tablestore.model.RecordColumn;
import com.alicloud.openservices.tablestore.model.RecordSequenceInfo;
import com.alicloud.openservices.tablestore.model.StreamRecord;
import com.google.gson.JsonArray;
import com.google.gson.JsonElement;
import com.google.gson.JsonNull;
import com.google.gson.JsonObject;
import com.google.gson.JsonPrimitive;

import java.util.Base64;
import java.util.Locale;

/** A StreamRecord as the JSON line the Python tests compare across SDKs. */
final class RecordJson {
    private RecordJson() {
    }

    static JsonObject of(String channelId, StreamRecord record) {
        JsonObject pk = new JsonObject();
        for (PrimaryKeyColumn key : record.getPrimaryKey().getPrimaryKeyColumns()) {
            pk.add(key.getName(), keyValue(key.getValue()));
        }
        JsonArray columns = new JsonArray();
        for (RecordColumn recordColumn : record.getColumns()) {
            Column column = recordColumn.getColumn();
            JsonObject out = new JsonObject();
            out.addProperty("name", column.getName());
            out.addProperty("op", columnOp(recordColumn.getColumnType()));
            if (recordColumn.getColumnType() == RecordColumn.ColumnType.PUT) {
                out.add("value", columnValue(column.getValue()));
            }
            if (column.hasSetTimestamp()) {
                out.addProperty("ts", column.getTimestamp());
            }
            columns.add(out);
        }
        JsonObject fields = new JsonObject();
        fields.addProperty("event", "record");
        fields.addProperty("channel", channelId);
        fields.addProperty("action", record.getRecordType().name().toLowerCase(Locale.ROOT));
        fields.add("pk", pk);
        fields.add("columns", columns);
        RecordSequenceInfo sequence = record.getSequenceInfo();
        if (sequence == null) {
            fields.add("seq", JsonNull.INSTANCE);
        } else {
            JsonArray seq = new JsonArray();
            seq.add(sequence.getEpoch());
            seq.add(sequence.getTimestamp());
            seq.add(sequence.getRowIndex());
            fields.add("seq", seq);
        }
        return fields;
    }

    /** Reads every key and column value without printing it; returns a size figure. */
    static long touch(StreamRecord record) {
        long size = 0;
        for (PrimaryKeyColumn key : record.getPrimaryKey().getPrimaryKeyColumns()) {
            size += key.getValue().getDataSize();
        }
        for (RecordColumn recordColumn : record.getColumns()) {
            Column column = recordColumn.getColumn();
            size += column.getName().length();
            if (recordColumn.getColumnType() == RecordColumn.ColumnType.PUT) {
                size += column.getValue().getDataSize();
            }
        }
        return size;
    }

    private static String columnOp(RecordColumn.ColumnType type) {
        switch (type) {
            case DELETE_ONE_VERSION:
                return "delete_one";
            case DELETE_ALL_VERSION:
                return "delete_all";
            default:
                return "put";
        }
    }

    private static JsonElement keyValue(PrimaryKeyValue value) {
        switch (value.getType()) {
            case INTEGER:
                return new JsonPrimitive(value.asLong());
            case BINARY:
                return base64(value.asBinary());
            default:
                return new JsonPrimitive(value.asString());
        }
    }

    private static JsonElement columnValue(ColumnValue value) {
        switch (value.getType()) {
            case INTEGER:
                return new JsonPrimitive(value.asLong());
            case DOUBLE:
                return new JsonPrimitive(value.asDouble());
            case BOOLEAN:
                return new JsonPrimitive(value.asBoolean());
            case BINARY:
                return base64(value.asBinary());
            default:
                return new JsonPrimitive(value.asString());
        }
    }

    private static JsonObject base64(byte[] bytes) {
        JsonObject out = new JsonObject();
        out.addProperty("base64", Base64.getEncoder().encodeToString(bytes));
        return out;
    }
}
