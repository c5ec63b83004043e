package compat;

import com.google.gson.Gson;
import com.google.gson.GsonBuilder;
import com.google.gson.JsonObject;

import java.io.PrintStream;
import java.nio.charset.StandardCharsets;

/** One JSON object per stdout line; lines from concurrent threads never interleave. */
final class Output {
    private static final Gson GSON = new GsonBuilder().serializeNulls().disableHtmlEscaping().create();
    private static final PrintStream OUT = new PrintStream(
        new java.io.FileOutputStream(java.io.FileDescriptor.out), false, StandardCharsets.UTF_8);

    private Output() {
    }

    static void emit(String id, JsonObject fields) {
        fields.addProperty("id", id);
        String line = GSON.toJson(fields);
        synchronized (OUT) {
            OUT.println(line);
            OUT.flush();
        }
    }

    static void error(String id, String message) {
        JsonObject fields = new JsonObject();
        fields.addProperty("event", "error");
        fields.addProperty("error", message);
        emit(id, fields);
    }
}
