package compat;

import com.google.gson.JsonObject;
import com.google.gson.JsonParser;

import sun.misc.Signal;

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CountDownLatch;

/**
 * Drives the official Java Tablestore SDK (table API and TunnelWorker) for
 * the beam_tunnel compatibility tests and benchmark.
 *
 * <p>Commands are JSON objects: one on the command line (run it, then exit),
 * or one per stdin line (serve: each runs on its own thread, so one warm JVM
 * serves many scenarios; {"op":"stop","target":ID} stops a consume). Every
 * report is one JSON object per stdout line tagged with the command's "id".
 * SIGINT/SIGTERM or stdin closing stop every running command gracefully.
 */
public final class Main {
    private static final Map<String, CountDownLatch> STOPS = new ConcurrentHashMap<>();
    private static final Map<String, Thread> RUNNING = new ConcurrentHashMap<>();

    public static void main(String[] args) throws Exception {
        // SIGTERM/SIGINT stop the commands gracefully and exit 0 (a shutdown
        // hook alone would end the JVM with 143 however cleanly it stopped).
        for (String name : new String[] {"TERM", "INT"}) {
            Signal.handle(new Signal(name), signal -> new Thread(() -> {
                stopAllAndWait();
                System.exit(0);
            }, "stop-on-signal").start());
        }
        if (args.length > 0) {
            start(JsonParser.parseString(args[0]).getAsJsonObject());
            waitForAll();
            return;
        }
        BufferedReader lines = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        String line;
        while ((line = lines.readLine()) != null) {
            if (line.isBlank()) {
                continue;
            }
            JsonObject command;
            try {
                command = JsonParser.parseString(line).getAsJsonObject();
            } catch (RuntimeException e) {
                Output.error("", "bad command " + line + ": " + e);
                continue;
            }
            if ("stop".equals(Commands.text(command, "op"))) {
                stop(Commands.text(command, "target"));
            } else {
                start(command);
            }
        }
        stopAllAndWait();
    }

    private static void start(JsonObject command) {
        String id = Commands.text(command, "id");
        CountDownLatch stop = new CountDownLatch(1);
        STOPS.put(id, stop);
        Thread thread = new Thread(() -> {
            try {
                Commands.run(command, stop);
            } catch (Throwable e) {
                Output.error(id, Commands.text(command, "op") + " failed: " + e);
            } finally {
                STOPS.remove(id);
                RUNNING.remove(id);
            }
        }, "command-" + id);
        RUNNING.put(id, thread);
        thread.start();
    }

    private static void stop(String target) {
        STOPS.forEach((id, latch) -> {
            if (target.isEmpty() || target.equals(id)) {
                latch.countDown();
            }
        });
    }

    private static void stopAllAndWait() {
        stop("");
        waitForAll();
    }

    private static void waitForAll() {
        for (Thread thread : RUNNING.values()) {
            try {
                thread.join(60_000);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return;
            }
        }
    }
}
