package boardverify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fpgadetector/pynq-agent/agent"
	"github.com/fpgadetector/pynq-agent/web"
)

// verifyBoard talks to an agent's /api/verify: the board's over the network, or the
// in-process sim agent's through httptest (the same handler and agent code).
type verifyBoard struct {
	base   string
	token  string
	client *http.Client
	close  func()
}

func openVerifyBoard(ctx context.Context, o Options, log *slog.Logger) (*verifyBoard, error) {
	token := o.Token
	if token == "" {
		token = os.Getenv("PYNQ_TOKEN")
	}
	if o.Board == "sim" {
		return openSimBoard(ctx, o, log)
	}
	if token == "" {
		return nil, errors.New("verify: the agent needs its token: --token or $PYNQ_TOKEN (server.token on the board)")
	}
	base, err := agentURL(o.Board)
	if err != nil {
		return nil, err
	}
	return &verifyBoard{base: base, token: token, client: &http.Client{Timeout: 5 * time.Minute}, close: func() {}}, nil
}

// agentURL turns HOST, HOST:PORT or a URL into the agent's base URL.
func agentURL(board string) (string, error) {
	if !strings.Contains(board, "://") {
		if _, _, err := net.SplitHostPort(board); err != nil {
			board = net.JoinHostPort(strings.Trim(board, "[]"), "8080")
		}
		board = "http://" + board
	}
	u, err := url.Parse(board)
	if err != nil || u.Host == "" {
		return "", fmt.Errorf("verify: --board %q: want HOST[:PORT], a URL or sim", board)
	}
	return strings.TrimRight(u.String(), "/"), nil
}

// openSimBoard starts the agent on the FPGA simulation in-process and serves its API
// on a loopback httptest server.
func openSimBoard(ctx context.Context, o Options, log *slog.Logger) (*verifyBoard, error) {
	bit := o.Bitstream
	if bit == "" {
		bits, _ := filepath.Glob(filepath.Join(filepath.Dir(filepath.Clean(o.Model)), "bitstream", "*.bit"))
		if len(bits) != 1 {
			return nil, errors.New("verify: --board sim needs --bitstream (the QNN overlay's .bit, its .hwh beside it)")
		}
		bit = bits[0]
	}
	cfg := agent.Defaults()
	cfg.Backend = agent.BackendSim
	cfg.Bitstream.Path = bit
	cfg.Model.Dir = o.Model
	cfg.Model.Names = o.Names
	cfg.Model.Threads = o.Threads
	cfg.Source.Input = o.Dataset
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("verify: sim agent: %w", err)
	}
	alog := o.AgentLog
	if alog == nil {
		alog = log
	}
	a, err := agent.New(ctx, cfg, alog)
	if err != nil {
		return nil, fmt.Errorf("verify: sim agent: %w", err)
	}
	if o.SimHook != nil {
		if err := o.SimHook(a); err != nil {
			a.Close()
			return nil, err
		}
	}
	const token = "verify-sim"
	hub := web.NewHub(web.HubOptions{Logger: log})
	srv := httptest.NewServer(web.NewServer(a, hub, web.ServerOptions{Token: token, Logger: log}))
	return &verifyBoard{base: srv.URL, token: token, client: srv.Client(), close: func() {
		srv.Close()
		hub.Close()
		a.Close()
	}}, nil
}

// verify posts one image.
func (b *verifyBoard) verify(ctx context.Context, image []byte, q url.Values) (*web.VerifyResult, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, b.base+"/api/verify?"+q.Encode(), bytes.NewReader(image))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+b.token)
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := b.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		hint := ""
		switch resp.StatusCode {
		case http.StatusUnauthorized, http.StatusForbidden:
			hint = " (check --token against the agent's server.token)"
		case http.StatusNotFound:
			hint = " (the agent predates /api/verify: deploy this version)"
		}
		return nil, fmt.Errorf("agent: %s: %s%s", resp.Status, strings.TrimSpace(string(msg)), hint)
	}
	var res web.VerifyResult
	if err := json.NewDecoder(resp.Body).Decode(&res); err != nil {
		return nil, fmt.Errorf("agent: verify response: %w", err)
	}
	return &res, nil
}
