// Command compat drives the official Go Tablestore SDK (table API and the
// tunnel TunnelDaemon) against a Tablestore endpoint, for the beam_tunnel
// compatibility tests and benchmark.
//
// It takes commands as JSON objects, either one on the command line (run it,
// then exit) or one per line on stdin (serve: each command runs in its own
// goroutine until it finishes or a {"op":"stop","target":ID} line stops it).
// Everything it reports is one JSON object per stdout line tagged with the
// command's "id". SIGINT/SIGTERM (or stdin closing, when serving) stop every
// running command gracefully and exit 0 once they have reported "done".
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"sync"
	"syscall"
)

// command is the union of every op's fields; each op reads the ones it needs.
type command struct {
	ID        string `json:"id"`
	Op        string `json:"op"`
	Endpoint  string `json:"endpoint"`
	Instance  string `json:"instance"`
	KeyID     string `json:"key_id"`
	KeySecret string `json:"key_secret"`

	Table  string `json:"table"`
	Tunnel string `json:"tunnel"`
	Type   string `json:"type"`

	Create  bool            `json:"create"`
	Changes [][]interface{} `json:"changes"`

	TunnelID    string  `json:"tunnel_id"`
	Expect      int64   `json:"expect"`
	TimeLimitS  float64 `json:"time_limit_s"`
	HeartbeatS  float64 `json:"heartbeat_s"`
	CheckpointS float64 `json:"checkpoint_s"`
	Emit        *bool   `json:"emit"`
	Target      string  `json:"target"`
}

// output serialises report lines from concurrent goroutines.
type output struct {
	mu  sync.Mutex
	out *bufio.Writer
}

func (o *output) emit(id string, fields map[string]interface{}) {
	fields["id"] = id
	line, err := json.Marshal(fields)
	if err != nil {
		line, _ = json.Marshal(map[string]interface{}{"id": id, "event": "error", "error": err.Error()})
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	o.out.Write(line)
	o.out.WriteByte('\n')
	o.out.Flush()
}

type runner struct {
	out     *output
	mu      sync.Mutex
	stops   map[string]chan struct{}
	running sync.WaitGroup
}

func (r *runner) start(cmd command) {
	stop := make(chan struct{})
	r.mu.Lock()
	r.stops[cmd.ID] = stop
	r.mu.Unlock()
	r.running.Add(1)
	go func() {
		defer r.running.Done()
		r.run(cmd, stop)
		r.mu.Lock()
		delete(r.stops, cmd.ID)
		r.mu.Unlock()
	}()
}

func (r *runner) stop(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for target, ch := range r.stops {
		if id == "" || id == target {
			close(ch)
			delete(r.stops, target)
		}
	}
}

func (r *runner) run(cmd command, stop chan struct{}) {
	var err error
	switch cmd.Op {
	case "write":
		err = writeRows(cmd, r.out)
	case "create_tunnel":
		err = createTunnel(cmd, r.out)
	case "describe":
		err = describeTunnel(cmd, r.out)
	case "consume":
		err = consume(cmd, r.out, stop)
	default:
		err = fmt.Errorf("unknown op %q", cmd.Op)
	}
	if err != nil {
		r.out.emit(cmd.ID, map[string]interface{}{"event": "error", "op": cmd.Op, "error": err.Error()})
	}
}

func parse(line string) (command, error) {
	var cmd command
	if err := json.Unmarshal([]byte(line), &cmd); err != nil {
		return cmd, fmt.Errorf("bad command %q: %v", line, err)
	}
	return cmd, nil
}

func main() {
	r := &runner{out: &output{out: bufio.NewWriter(os.Stdout)}, stops: map[string]chan struct{}{}}
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-signals
		r.stop("")
	}()

	if len(os.Args) > 1 {
		cmd, err := parse(os.Args[1])
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		r.start(cmd)
		r.running.Wait()
		return
	}
	lines := bufio.NewScanner(os.Stdin)
	lines.Buffer(make([]byte, 1<<20), 64<<20)
	for lines.Scan() {
		cmd, err := parse(lines.Text())
		if err != nil {
			r.out.emit("", map[string]interface{}{"event": "error", "error": err.Error()})
			continue
		}
		if cmd.Op == "stop" {
			r.stop(cmd.Target)
			continue
		}
		r.start(cmd)
	}
	r.stop("")
	r.running.Wait()
}
