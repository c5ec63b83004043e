package main

import (
	"encoding/base64"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aliyun/aliyun-tablestore-go-sdk/tunnel"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

func tunnelClient(cmd command) tunnel.TunnelClient {
	return tunnel.NewTunnelClient(cmd.Endpoint, cmd.Instance, cmd.KeyID, cmd.KeySecret)
}

func createTunnel(cmd command, out *output) error {
	resp, err := tunnelClient(cmd).CreateTunnel(&tunnel.CreateTunnelRequest{
		TableName:  cmd.Table,
		TunnelName: cmd.Tunnel,
		Type:       tunnel.TunnelType(cmd.Type),
	})
	if err != nil {
		return fmt.Errorf("CreateTunnel %s/%s: %v", cmd.Table, cmd.Tunnel, err)
	}
	out.emit(cmd.ID, map[string]interface{}{"event": "tunnel", "tunnel_id": resp.TunnelId})
	return nil
}

// describeTunnel reports the SDK's own view of a tunnel's progress:
// DescribeTunnel (channel RPO = consume point, ns) and GetRpo.
func describeTunnel(cmd command, out *output) error {
	client := tunnelClient(cmd)
	resp, err := client.DescribeTunnel(&tunnel.DescribeTunnelRequest{TableName: cmd.Table, TunnelName: cmd.Tunnel})
	if err != nil {
		return fmt.Errorf("DescribeTunnel %s/%s: %v", cmd.Table, cmd.Tunnel, err)
	}
	channels := []map[string]interface{}{}
	for _, c := range resp.Channels {
		channels = append(channels, map[string]interface{}{
			"channel": c.ChannelId, "type": c.ChannelType, "status": c.ChannelStatus,
			"client": c.ClientId, "rpo_ns": c.ChannelRPO,
		})
	}
	rpo, err := client.GetRpo(&tunnel.GetRpoRequest{TunnelId: resp.Tunnel.TunnelId})
	if err != nil {
		return fmt.Errorf("GetRpo %s: %v", resp.Tunnel.TunnelId, err)
	}
	out.emit(cmd.ID, map[string]interface{}{
		"event": "describe", "now_ns": time.Now().UnixNano(), "tunnel_id": resp.Tunnel.TunnelId,
		"stage": resp.Tunnel.Stage, "tunnel_rpo_ns": resp.TunnelRPO, "channels": channels,
		"rpo": rpo.RpoInfos, "tunnel_rpo": rpo.TunnelRpoInfos,
	})
	return nil
}

// consume runs a TunnelDaemon on cmd.TunnelID until it has delivered
// cmd.Expect records (when > 0), cmd.TimeLimitS passed, or stop closes; it
// then closes the daemon (a graceful shutdown) and reports "done".
func consume(cmd command, out *output, stop chan struct{}) error {
	emit := cmd.Emit == nil || *cmd.Emit
	var count, touched int64
	enough := make(chan struct{})
	var enoughOnce sync.Once
	var finishedAt atomic.Value
	started := time.Now()

	process := func(ctx *tunnel.ChannelContext, records []*tunnel.Record) error {
		for _, record := range records {
			if emit {
				out.emit(cmd.ID, recordFields(ctx.ChannelId, record))
			} else {
				atomic.AddInt64(&touched, touchRecord(record))
			}
		}
		total := atomic.AddInt64(&count, int64(len(records)))
		if cmd.Expect > 0 && total >= cmd.Expect {
			enoughOnce.Do(func() {
				finishedAt.Store(time.Now())
				close(enough)
			})
		}
		return nil
	}
	logConfig := zap.NewProductionConfig()
	logConfig.Level = zap.NewAtomicLevelAt(zap.WarnLevel)
	logger, err := logConfig.Build()
	if err != nil {
		return err
	}
	config := &tunnel.TunnelWorkerConfig{
		HeartbeatInterval: seconds(cmd.HeartbeatS, 30),
		HeartbeatTimeout:  seconds(cmd.HeartbeatS, 30) * 10,
		ProcessorFactory: &tunnel.SimpleProcessFactory{
			ProcessFunc: process,
			CpInterval:  seconds(cmd.CheckpointS, 10),
			Logger:      logger,
		},
		LogConfig:      &logConfig,
		LogWriteSyncer: zapcore.AddSync(os.Stderr),
	}
	daemon := tunnel.NewTunnelDaemon(tunnelClient(cmd), cmd.TunnelID, config)
	failed := make(chan error, 1)
	go func() { failed <- daemon.Run() }()

	var limit <-chan time.Time
	if cmd.TimeLimitS > 0 {
		limit = time.After(seconds(cmd.TimeLimitS, 0))
	}
	reason := ""
	var runErr error
	select {
	case <-enough:
		reason = "expect"
	case <-limit:
		reason = "time_limit"
	case <-stop:
		reason = "stopped"
	case runErr = <-failed:
		reason = "daemon_exit"
	}
	daemon.Close()
	if reason != "daemon_exit" {
		select {
		case runErr = <-failed:
		case <-time.After(30 * time.Second):
			runErr = fmt.Errorf("TunnelDaemon did not return within 30 s of Close")
		}
	}
	elapsed := time.Since(started)
	if at, ok := finishedAt.Load().(time.Time); ok {
		elapsed = at.Sub(started)
	}
	done := map[string]interface{}{
		"event": "done", "reason": reason, "records": atomic.LoadInt64(&count),
		"elapsed_s": elapsed.Seconds(), "touched": atomic.LoadInt64(&touched),
	}
	if runErr != nil {
		done["error"] = runErr.Error()
	}
	out.emit(cmd.ID, done)
	return nil
}

func seconds(value, fallback float64) time.Duration {
	if value <= 0 {
		value = fallback
	}
	return time.Duration(value * float64(time.Second))
}

var actions = map[tunnel.ActionType]string{tunnel.AT_Put: "put", tunnel.AT_Update: "update", tunnel.AT_Delete: "delete"}
var columnTypes = map[tunnel.RecordColumnType]string{
	tunnel.RCT_Put: "put", tunnel.RCT_DeleteOneVersion: "delete_one", tunnel.RCT_DeleteAllVersions: "delete_all",
}

func recordFields(channelID string, record *tunnel.Record) map[string]interface{} {
	pk := map[string]interface{}{}
	for _, key := range record.PrimaryKey.PrimaryKeys {
		pk[key.ColumnName] = jsonValue(key.Value)
	}
	columns := []map[string]interface{}{}
	for _, c := range record.Columns {
		column := map[string]interface{}{"name": *c.Name, "op": columnTypes[c.Type]}
		if c.Value != nil {
			column["value"] = jsonValue(c.Value)
		}
		if c.Timestamp != nil {
			column["ts"] = *c.Timestamp
		}
		columns = append(columns, column)
	}
	fields := map[string]interface{}{
		"event": "record", "channel": channelID, "action": actions[record.Type],
		"pk": pk, "columns": columns, "timestamp": record.Timestamp, "seq": nil,
	}
	if record.SequenceInfo != nil {
		// The Go SDK's decoder drops the epoch (tunnel-protocol.md §3.3).
		fields["seq"] = []int64{int64(record.SequenceInfo.Epoch), record.SequenceInfo.Timestamp,
			int64(record.SequenceInfo.RowIndex)}
	}
	return fields
}

func jsonValue(value interface{}) interface{} {
	if raw, ok := value.([]byte); ok {
		return map[string]string{"base64": base64.StdEncoding.EncodeToString(raw)}
	}
	return value
}

// touchRecord reads every key and column value of a record (what a real
// consumer does) without the cost of printing it; returns a size figure.
func touchRecord(record *tunnel.Record) int64 {
	var size int64
	for _, key := range record.PrimaryKey.PrimaryKeys {
		size += valueSize(key.Value)
	}
	for _, c := range record.Columns {
		size += int64(len(*c.Name)) + valueSize(c.Value)
	}
	return size
}

func valueSize(value interface{}) int64 {
	switch v := value.(type) {
	case string:
		return int64(len(v))
	case []byte:
		return int64(len(v))
	case nil:
		return 0
	default:
		return 8
	}
}
