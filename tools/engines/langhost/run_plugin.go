// RunPlugin for policy packs (CrossGuard), so `pulumi preview --policy-pack DIR` works with this host.
//
// Why here: since pkg/v3 ~3.1xx the engine starts a policy pack whose PulumiPolicy.yaml says `runtime: nodejs`
// through the nodejs *language host* (LanguageRuntime.RunPlugin, kind "analyzer"; pkg/resource/plugin
// analyzer_plugin.go NewPolicyAnalyzer -> plugin.go newPlugin with a directory). Only when no
// pulumi-language-nodejs is found does it fall back to an analyzer plugin named `pulumi-analyzer-policy-nodejs`
// (the shell script shipped in the CLI's release tarball). Our host is always found (the programs need it), so
// the fallback is never taken: without RunPlugin the engine fails with "Unimplemented".
//
// What it does is what that script does: `node <@pulumi/pulumi>/cmd/run-policy-pack <engine address> .` in the
// policy pack's directory, with @pulumi/pulumi resolved from the nearest node_modules at or above the pack. The
// child's stdout (its first line is the analyzer's gRPC port) and stderr are streamed back, then its exit code.
// Other plugin kinds (Node.js resource providers, tools) stay unimplemented.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
)

// missingRunPolicyPack is the phrase the engine looks for on the plugin's stderr to tell the user to install the
// pack's dependencies (pkg/resource/plugin: errRunPolicyModuleNotFound).
const missingRunPolicyPack = "Cannot find module '@pulumi/pulumi/cmd/run-policy-pack'"

// killGrace is how long a cancelled policy pack gets between SIGTERM and SIGKILL.
const killGrace = 5 * time.Second

// findUpwards returns <dir>/node_modules/<rel> for the first dir from start upwards that has <rel>/index.js.
func findUpwards(start, rel string) (string, bool) {
	dir, err := filepath.Abs(start)
	if err != nil {
		return "", false
	}
	for {
		p := filepath.Join(dir, "node_modules", rel)
		if _, err := os.Stat(filepath.Join(p, "index.js")); err == nil {
			return p, true
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", false
		}
		dir = parent
	}
}

// streamSender serialises Send calls: a gRPC stream must not be written from two goroutines at once.
type streamSender struct {
	mu     sync.Mutex
	server pulumirpc.LanguageRuntime_RunPluginServer
}

func (s *streamSender) send(resp *pulumirpc.RunPluginResponse) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.server.Send(resp)
}

func (s *streamSender) pump(r io.Reader, wrap func([]byte) *pulumirpc.RunPluginResponse, done *sync.WaitGroup) {
	defer done.Done()
	buf := make([]byte, 32*1024)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			chunk := append([]byte(nil), buf[:n]...)
			if s.send(wrap(chunk)) != nil {
				// The engine went away; keep draining so the child never blocks on a full pipe.
				_, _ = io.Copy(io.Discard, r)
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func stdoutChunk(b []byte) *pulumirpc.RunPluginResponse {
	return &pulumirpc.RunPluginResponse{Output: &pulumirpc.RunPluginResponse_Stdout{Stdout: b}}
}

func stderrChunk(b []byte) *pulumirpc.RunPluginResponse {
	return &pulumirpc.RunPluginResponse{Output: &pulumirpc.RunPluginResponse_Stderr{Stderr: b}}
}

func exitCode(code int32) *pulumirpc.RunPluginResponse {
	return &pulumirpc.RunPluginResponse{Output: &pulumirpc.RunPluginResponse_Exitcode{Exitcode: code}}
}

func (h *host) RunPlugin(req *pulumirpc.RunPluginRequest, server pulumirpc.LanguageRuntime_RunPluginServer) error {
	if req.GetKind() != "analyzer" {
		return status.Errorf(codes.Unimplemented,
			"RunPlugin: this pulumi-language-nodejs runs policy packs (kind analyzer) only, not kind %q", req.GetKind())
	}
	out := &streamSender{server: server}

	packDir := req.GetPwd()
	var opts *structpb.Struct
	if info := req.GetInfo(); info != nil {
		if info.GetProgramDirectory() != "" {
			packDir = info.GetProgramDirectory()
		}
		opts = info.GetOptions()
	}
	if packDir == "" {
		return status.Error(codes.InvalidArgument, "RunPlugin: no policy pack directory (info.program_directory)")
	}

	script, ok := findUpwards(packDir, filepath.Join("@pulumi", "pulumi", "cmd", "run-policy-pack"))
	if !ok {
		msg := fmt.Sprintf("%s (no node_modules/@pulumi/pulumi at or above %s: run `npm ci`)\n", missingRunPolicyPack, packDir)
		if err := out.send(stderrChunk([]byte(msg))); err != nil {
			return err
		}
		return out.send(exitCode(1))
	}

	var args []string
	if nodeargs, ok := optionString(opts, "nodeargs"); ok && nodeargs != "" {
		args = append(args, strings.Fields(nodeargs)...)
	}
	// run-policy-pack's usage: <engine-address> <program>; the engine passes its address as the only argument.
	args = append(args, script)
	args = append(args, req.GetArgs()...)
	args = append(args, ".")

	ctx, cancel := context.WithCancel(server.Context())
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", args...)
	cmd.Dir = packDir
	cmd.Env = req.GetEnv()
	if len(cmd.Env) == 0 {
		cmd.Env = os.Environ()
	}
	// Own process group: a cancelled run (the engine closing the stream) takes ts-node and the pack with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM) }
	cmd.WaitDelay = killGrace

	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return status.Errorf(codes.FailedPrecondition, "RunPlugin: starting node: %v", err)
	}
	h.mu.Lock()
	h.running[cmd] = struct{}{}
	h.mu.Unlock()
	defer func() {
		h.mu.Lock()
		delete(h.running, cmd)
		h.mu.Unlock()
	}()

	var pumps sync.WaitGroup
	pumps.Add(2)
	go out.pump(stdout, stdoutChunk, &pumps)
	go out.pump(stderr, stderrChunk, &pumps)
	pumps.Wait()
	waitErr := cmd.Wait()

	code := int32(0)
	var exitErr *exec.ExitError
	switch {
	case waitErr == nil:
	case errors.As(waitErr, &exitErr):
		code = int32(exitErr.ExitCode())
	default:
		return status.Errorf(codes.Internal, "RunPlugin: waiting for node: %v", waitErr)
	}
	return out.send(exitCode(code))
}
