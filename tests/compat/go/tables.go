package main

import (
	"fmt"

	"github.com/aliyun/aliyun-tablestore-go-sdk/tablestore"
)

// writeRows optionally creates cmd.Table (one STRING key column "id", a
// stream kept 24 h) and applies cmd.Changes in order through the table API:
// ["put", key, n] puts a row with the columns of rowColumns(n),
// ["update", key, n] updates n and s, ["delete", key] deletes the row.
// Consecutive puts go in one BatchWriteRow of up to 200 rows.
func writeRows(cmd command, out *output) error {
	client := tablestore.NewClient(cmd.Endpoint, cmd.Instance, cmd.KeyID, cmd.KeySecret)
	if cmd.Create {
		meta := &tablestore.TableMeta{TableName: cmd.Table}
		meta.AddPrimaryKeyColumn("id", tablestore.PrimaryKeyType_STRING)
		_, err := client.CreateTable(&tablestore.CreateTableRequest{
			TableMeta:          meta,
			TableOption:        &tablestore.TableOption{TimeToAlive: -1, MaxVersion: 1},
			ReservedThroughput: &tablestore.ReservedThroughput{},
			StreamSpec:         &tablestore.StreamSpecification{EnableStream: true, ExpirationTime: 24},
		})
		if err != nil {
			return fmt.Errorf("CreateTable %s: %v", cmd.Table, err)
		}
	}
	batch := &tablestore.BatchWriteRowRequest{}
	pending := 0
	flush := func() error {
		if pending == 0 {
			return nil
		}
		resp, err := client.BatchWriteRow(batch)
		if err != nil {
			return fmt.Errorf("BatchWriteRow: %v", err)
		}
		for _, result := range resp.TableToRowsResult[cmd.Table] {
			if !result.IsSucceed {
				return fmt.Errorf("BatchWriteRow row failed: %s %s", result.Error.Code, result.Error.Message)
			}
		}
		batch = &tablestore.BatchWriteRowRequest{}
		pending = 0
		return nil
	}
	written := 0
	for _, change := range cmd.Changes {
		op, key, n, err := changeParts(change)
		if err != nil {
			return err
		}
		pk := new(tablestore.PrimaryKey)
		pk.AddPrimaryKeyColumn("id", key)
		switch op {
		case "put":
			row := &tablestore.PutRowChange{TableName: cmd.Table, PrimaryKey: pk}
			for _, column := range rowColumns(n) {
				row.AddColumn(column.name, column.value)
			}
			row.SetCondition(tablestore.RowExistenceExpectation_IGNORE)
			batch.AddRowChange(row)
			pending++
			if pending == 200 {
				err = flush()
			}
		case "update":
			if err = flush(); err == nil {
				row := &tablestore.UpdateRowChange{TableName: cmd.Table, PrimaryKey: pk}
				row.PutColumn("n", n)
				row.PutColumn("s", fmt.Sprintf("updated-%d", n))
				row.SetCondition(tablestore.RowExistenceExpectation_IGNORE)
				_, err = client.UpdateRow(&tablestore.UpdateRowRequest{UpdateRowChange: row})
			}
		case "delete":
			if err = flush(); err == nil {
				row := &tablestore.DeleteRowChange{TableName: cmd.Table, PrimaryKey: pk}
				row.SetCondition(tablestore.RowExistenceExpectation_IGNORE)
				_, err = client.DeleteRow(&tablestore.DeleteRowRequest{DeleteRowChange: row})
			}
		default:
			err = fmt.Errorf("unknown change %q in %v", op, change)
		}
		if err != nil {
			return err
		}
		written++
	}
	if err := flush(); err != nil {
		return err
	}
	out.emit(cmd.ID, map[string]interface{}{"event": "done", "written": written})
	return nil
}

type column struct {
	name  string
	value interface{}
}

// rowColumns gives a put row one column of each value type, all derived
// from n so a reader can check every value it decodes.
func rowColumns(n int64) []column {
	return []column{
		{"n", n},
		{"s", fmt.Sprintf("row-%d", n)},
		{"f", float64(n) / 2},
		{"b", n%2 == 0},
		{"raw", []byte{byte(n), byte(n >> 8), 0xff}},
	}
}

func changeParts(change []interface{}) (op, key string, n int64, err error) {
	if len(change) < 2 {
		return "", "", 0, fmt.Errorf("change %v needs at least [op, key]", change)
	}
	op, okOp := change[0].(string)
	key, okKey := change[1].(string)
	if !okOp || !okKey {
		return "", "", 0, fmt.Errorf("change %v: op and key must be strings", change)
	}
	if len(change) > 2 {
		number, ok := change[2].(float64)
		if !ok {
			return "", "", 0, fmt.Errorf("change %v: n must be a number", change)
		}
		n = int64(number)
	}
	return op, key, n, nil
}
