package compat;

import com.alicloud.openservices.tablestore.TunnelClient;
import com.alicloud.openservices.tablestore.model.tunnel.ChannelInfo;
import com.alicloud.openservices.tablestore.model.tunnel.CreateTunnelRequest;
import com.alicloud.openservices.tablestore.model.tunnel.CreateTunnelResponse;
import com.alicloud.openservices.tablestore.model.tunnel.DescribeTunnelRequest;
import com.alicloud.openservices.tablestore.model.tunnel.DescribeTunnelResponse;
import com.alicloud.openservices.tablestore.model.tunnel.TunnelType;
import com.google.gson.JsonArray;
import com.google.gson.JsonObject;

/** Tunnel management through the SDK's TunnelClient. */
final class Tunnels {
    private Tunnels() {
    }

    /**
     * A TunnelClient that checks every response's signature and headers.
     * The SDK's constructors turn that validation off for tunnel calls; the
     * emulator signs its answers, so the check is switched back on (the
     * configuration object is read on every request).
     */
    static TunnelClient client(JsonObject command) {
        TunnelClient client = new TunnelClient(Commands.text(command, "endpoint"), Commands.text(command, "key_id"),
            Commands.text(command, "key_secret"), Commands.text(command, "instance"));
        client.getClientConfig().setEnableResponseValidation(true);
        return client;
    }

    static void create(JsonObject command) {
        TunnelClient client = client(command);
        try {
            CreateTunnelResponse response = client.createTunnel(new CreateTunnelRequest(
                Commands.text(command, "table"), Commands.text(command, "tunnel"),
                TunnelType.valueOf(Commands.text(command, "type"))));
            JsonObject out = new JsonObject();
            out.addProperty("event", "tunnel");
            out.addProperty("tunnel_id", response.getTunnelId());
            out.addProperty("response_validation", client.getClientConfig().isEnableResponseValidation());
            Output.emit(Commands.text(command, "id"), out);
        } finally {
            client.shutdown();
        }
    }

    /** The SDK's own view of progress: each channel's consume point and lag (RPO). */
    static void describe(JsonObject command) {
        TunnelClient client = client(command);
        try {
            DescribeTunnelResponse response = client.describeTunnel(new DescribeTunnelRequest(
                Commands.text(command, "table"), Commands.text(command, "tunnel")));
            JsonArray channels = new JsonArray();
            for (ChannelInfo info : response.getChannelInfos()) {
                JsonObject channel = new JsonObject();
                channel.addProperty("channel", info.getChannelId());
                channel.addProperty("type", String.valueOf(info.getChannelType()));
                channel.addProperty("status", String.valueOf(info.getChannelStatus()));
                channel.addProperty("client", info.getClientId());
                channel.addProperty("consume_point_ms",
                    info.getChannelConsumePoint() == null ? null : info.getChannelConsumePoint().getTime());
                channel.addProperty("rpo_ms", info.getChannelRpo());
                channel.addProperty("count", info.getChannelCount());
                channels.add(channel);
            }
            JsonObject out = new JsonObject();
            out.addProperty("event", "describe");
            out.addProperty("now_ms", System.currentTimeMillis());
            out.addProperty("tunnel_id", response.getTunnelInfo().getTunnelId());
            out.addProperty("stage", String.valueOf(response.getTunnelInfo().getStage()));
            out.addProperty("tunnel_rpo_ms", response.getTunnelRpo());
            out.addProperty("tunnel_consume_point_ms",
                response.getTunnelConsumePoint() == null ? null : response.getTunnelConsumePoint().getTime());
            out.add("channels", channels);
            out.addProperty("response_validation", client.getClientConfig().isEnableResponseValidation());
            Output.emit(Commands.text(command, "id"), out);
        } finally {
            client.shutdown();
        }
    }
}
