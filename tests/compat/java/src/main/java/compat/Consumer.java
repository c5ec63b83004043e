package compat;

import com.alicloud.openservices.tablestore.TunnelClient;
import com.alicloud.openservices.tablestore.model.StreamRecord;
import com.alicloud.openservices.tablestore.tunnel.worker.IChannelProcessor;
import com.alicloud.openservices.tablestore.tunnel.worker.ProcessRecordsInput;
import com.alicloud.openservices.tablestore.tunnel.worker.TunnelWorker;
import com.alicloud.openservices.tablestore.tunnel.worker.TunnelWorkerConfig;
import com.google.gson.JsonObject;

import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;

/**
 * Runs a TunnelWorker on a tunnel until it has delivered "expect" records
 * (when above 0), "time_limit_s" passed or the command is stopped; then shuts
 * the worker down gracefully and reports "done" with the count and the time
 * from start to the expected record.
 */
final class Consumer {
    private Consumer() {
    }

    static void consume(JsonObject command, CountDownLatch stop) throws Exception {
        String id = Commands.text(command, "id");
        long expect = (long) Commands.number(command, "expect", 0);
        boolean emit = Commands.flag(command, "emit", true);
        AtomicLong count = new AtomicLong();
        AtomicLong touched = new AtomicLong();
        AtomicLong finishedNanos = new AtomicLong();
        long started = System.nanoTime();
        CountDownLatch enough = new CountDownLatch(1);

        IChannelProcessor processor = new IChannelProcessor() {
            @Override
            public void process(ProcessRecordsInput input) {
                for (StreamRecord record : input.getRecords()) {
                    if (emit) {
                        Output.emit(id, RecordJson.of(input.getChannelId(), record));
                    } else {
                        touched.addAndGet(RecordJson.touch(record));
                    }
                }
                long total = count.addAndGet(input.getRecords().size());
                if (expect > 0 && total >= expect && finishedNanos.compareAndSet(0, System.nanoTime())) {
                    enough.countDown();
                }
            }

            @Override
            public void shutdown() {
            }
        };
        TunnelClient client = Tunnels.client(command);
        TunnelWorkerConfig config = new TunnelWorkerConfig(processor);
        long heartbeat = Math.max(5, Math.round(Commands.number(command, "heartbeat_s", 5)));
        config.setHeartbeatIntervalInSec(heartbeat);
        config.setHeartbeatTimeoutInSec(heartbeat * 10);
        config.setCheckpointIntervalInMillis(Math.round(Commands.number(command, "checkpoint_s", 5) * 1000));
        TunnelWorker worker = new TunnelWorker(Commands.text(command, "tunnel_id"), client, config);
        String reason;
        String error = null;
        try {
            worker.connectAndWorking();
            reason = waitForEnd(enough, stop, Commands.number(command, "time_limit_s", 0));
        } catch (Exception e) {
            reason = "worker_error";
            error = e.toString();
        } finally {
            worker.shutdown();
            config.shutdown();
            client.shutdown();
        }
        long end = finishedNanos.get() != 0 ? finishedNanos.get() : System.nanoTime();
        JsonObject done = new JsonObject();
        done.addProperty("event", "done");
        done.addProperty("reason", reason);
        done.addProperty("records", count.get());
        done.addProperty("elapsed_s", (end - started) / 1e9);
        done.addProperty("touched", touched.get());
        done.addProperty("response_validation", client.getClientConfig().isEnableResponseValidation());
        if (error != null) {
            done.addProperty("error", error);
        }
        Output.emit(id, done);
    }

    /** Waits for the first of: enough records, a stop, the time limit. */
    private static String waitForEnd(CountDownLatch enough, CountDownLatch stop, double limitS)
            throws InterruptedException {
        long deadline = limitS > 0 ? System.nanoTime() + (long) (limitS * 1e9) : Long.MAX_VALUE;
        while (true) {
            if (enough.await(20, TimeUnit.MILLISECONDS)) {
                return "expect";
            }
            if (stop.getCount() == 0) {
                return "stopped";
            }
            if (System.nanoTime() > deadline) {
                return "time_limit";
            }
        }
    }
}
