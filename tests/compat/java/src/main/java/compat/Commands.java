package compat;

import com.google.gson.JsonElement;
import com.google.gson.JsonObject;

import java.util.concurrent.CountDownLatch;

/** Dispatches one command object to the op it names. */
final class Commands {
    private Commands() {
    }

    static void run(JsonObject command, CountDownLatch stop) throws Exception {
        String op = text(command, "op");
        switch (op) {
            case "write":
                Tables.write(command);
                break;
            case "create_tunnel":
                Tunnels.create(command);
                break;
            case "describe":
                Tunnels.describe(command);
                break;
            case "consume":
                Consumer.consume(command, stop);
                break;
            default:
                throw new IllegalArgumentException("unknown op '" + op + "'");
        }
    }

    static String text(JsonObject command, String name) {
        JsonElement value = command.get(name);
        return value == null || value.isJsonNull() ? "" : value.getAsString();
    }

    static double number(JsonObject command, String name, double fallback) {
        JsonElement value = command.get(name);
        return value == null || value.isJsonNull() ? fallback : value.getAsDouble();
    }

    static boolean flag(JsonObject command, String name, boolean fallback) {
        JsonElement value = command.get(name);
        return value == null || value.isJsonNull() ? fallback : value.getAsBoolean();
    }
}
