// pulumi-language-nodejs for edgepair: a small Node.js language host, written for this project.
//
// Why: the upstream language host is its own Go module (github.com/pulumi/pulumi/sdk/nodejs/cmd/
// pulumi-language-nodejs/v3, untagged) and the Go module proxy reachable here does not serve it, while
// github.com/pulumi/pulumi/sdk/v3 (gRPC protocol and helpers) is served. This host implements the part of the
// LanguageRuntime protocol that `pulumi preview/up/destroy/refresh` of a TypeScript or JavaScript program needs:
// Handshake, GetPluginInfo, GetRequiredPackages/Plugins (none: plugins come from PATH), Run, About,
// GetProgramDependencies, Cancel, and RunPlugin for policy packs (run_plugin.go). Code generation, templates,
// InstallDependencies (run `npm ci` yourself), RunPlugin for other Node.js plugins and Pack/Link are not implemented.
//
// Run starts `node <@pulumi/pulumi>/cmd/run` from the program's node_modules with the flags and environment that
// the @pulumi/pulumi Node.js SDK reads (see its cmd/run/index.js): --monitor, --engine, --project, --stack,
// --organization, --root-directory, --pwd, --parallel, --dry-run, PULUMI_CONFIG, PULUMI_CONFIG_SECRET_KEYS,
// PULUMI_NODEJS_TYPESCRIPT, PULUMI_NODEJS_TSCONFIG_PATH. Runtime options from Pulumi.yaml: typescript (default
// true), tsconfig, nodeargs.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/pulumi/pulumi/sdk/v3/go/common/util/rpcutil"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
)

// version is stamped by tools/build-engines (-X main.version=...).
var version = "3.259.0"

// exitBail is the exit code @pulumi/pulumi uses after it has already reported a user-actionable error.
const exitBail = 32

type host struct {
	pulumirpc.UnimplementedLanguageRuntimeServer

	mu            sync.Mutex
	engineAddress string
	running       map[*exec.Cmd]struct{}
}

func main() {
	h := &host{running: map[*exec.Cmd]struct{}{}}
	// The engine passes its address as the last positional argument; flags before it are ignored.
	if n := len(os.Args); n > 1 && !strings.HasPrefix(os.Args[n-1], "-") {
		h.engineAddress = os.Args[n-1]
	}
	cancel := make(chan bool)
	handle, err := rpcutil.ServeWithOptions(rpcutil.ServeOptions{
		Cancel: cancel,
		Init: func(srv *grpc.Server) error {
			pulumirpc.RegisterLanguageRuntimeServer(srv, h)
			return nil
		},
		Options: []grpc.ServerOption{grpc.MaxRecvMsgSize(400 * 1024 * 1024)},
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "pulumi-language-nodejs: %v\n", err)
		os.Exit(1)
	}
	// The engine reads the port from the first line of stdout.
	fmt.Printf("%d\n", handle.Port)
	if err := <-handle.Done; err != nil {
		fmt.Fprintf(os.Stderr, "pulumi-language-nodejs: %v\n", err)
		os.Exit(1)
	}
}

func (h *host) Handshake(_ context.Context, req *pulumirpc.LanguageHandshakeRequest,
) (*pulumirpc.LanguageHandshakeResponse, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if req.GetEngineAddress() != "" {
		h.engineAddress = req.GetEngineAddress()
	}
	return &pulumirpc.LanguageHandshakeResponse{}, nil
}

func (h *host) GetPluginInfo(context.Context, *emptypb.Empty) (*pulumirpc.PluginInfo, error) {
	return &pulumirpc.PluginInfo{Version: version}, nil
}

// GetRequiredPlugins and GetRequiredPackages report nothing: the engine then loads each provider when the program
// first registers one of its resources, from PATH (PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true makes a missing
// one an error rather than a download).
func (h *host) GetRequiredPlugins(context.Context, *pulumirpc.GetRequiredPluginsRequest,
) (*pulumirpc.GetRequiredPluginsResponse, error) {
	return &pulumirpc.GetRequiredPluginsResponse{}, nil
}

func (h *host) GetRequiredPackages(context.Context, *pulumirpc.GetRequiredPackagesRequest,
) (*pulumirpc.GetRequiredPackagesResponse, error) {
	return &pulumirpc.GetRequiredPackagesResponse{}, nil
}

func (h *host) GetProgramDependencies(context.Context, *pulumirpc.GetProgramDependenciesRequest,
) (*pulumirpc.GetProgramDependenciesResponse, error) {
	return &pulumirpc.GetProgramDependenciesResponse{}, nil
}

func (h *host) RuntimeOptionsPrompts(context.Context, *pulumirpc.RuntimeOptionsRequest,
) (*pulumirpc.RuntimeOptionsResponse, error) {
	return &pulumirpc.RuntimeOptionsResponse{}, nil
}

func (h *host) About(context.Context, *pulumirpc.AboutRequest) (*pulumirpc.AboutResponse, error) {
	node, err := exec.LookPath("node")
	if err != nil {
		return nil, status.Errorf(codes.FailedPrecondition, "node not found on PATH: %v", err)
	}
	out, err := exec.Command(node, "--version").Output()
	if err != nil {
		return nil, status.Errorf(codes.Internal, "node --version: %v", err)
	}
	return &pulumirpc.AboutResponse{
		Executable: node,
		Version:    strings.TrimPrefix(strings.TrimSpace(string(out)), "v"),
		Metadata:   map[string]string{"host": "edgepair pulumi-language-nodejs"},
	}, nil
}

func (h *host) Cancel(context.Context, *emptypb.Empty) (*emptypb.Empty, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for cmd := range h.running {
		if cmd.Process != nil {
			_ = cmd.Process.Signal(syscall.SIGINT)
		}
	}
	return &emptypb.Empty{}, nil
}

// findRunScript returns <dir>/node_modules/@pulumi/pulumi/cmd/run for the first dir from start upwards.
func findRunScript(start string) (string, error) {
	dir, err := filepath.Abs(start)
	if err != nil {
		return "", err
	}
	for {
		p := filepath.Join(dir, "node_modules", "@pulumi", "pulumi", "cmd", "run")
		if _, err := os.Stat(filepath.Join(p, "index.js")); err == nil {
			return p, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no node_modules/@pulumi/pulumi above %s: run `npm ci` first", start)
		}
		dir = parent
	}
}

func optionString(opts *structpb.Struct, key string) (string, bool) {
	if opts == nil {
		return "", false
	}
	v, ok := opts.GetFields()[key]
	if !ok {
		return "", false
	}
	switch k := v.GetKind().(type) {
	case *structpb.Value_StringValue:
		return k.StringValue, true
	case *structpb.Value_BoolValue:
		return fmt.Sprint(k.BoolValue), true
	case *structpb.Value_NumberValue:
		return fmt.Sprint(k.NumberValue), true
	}
	return "", false
}

func (h *host) Run(ctx context.Context, req *pulumirpc.RunRequest) (*pulumirpc.RunResponse, error) {
	info := req.GetInfo()
	programDir := req.GetPwd()
	entry := req.GetProgram()
	rootDir := ""
	var opts *structpb.Struct
	if info != nil {
		if info.GetProgramDirectory() != "" {
			programDir = info.GetProgramDirectory()
		}
		if info.GetEntryPoint() != "" {
			entry = info.GetEntryPoint()
		}
		rootDir = info.GetRootDirectory()
		opts = info.GetOptions()
	}
	if programDir == "" {
		programDir = "."
	}
	if entry == "" {
		entry = "."
	}

	runScript, err := findRunScript(programDir)
	if err != nil {
		return &pulumirpc.RunResponse{Error: err.Error()}, nil
	}

	h.mu.Lock()
	engine := h.engineAddress
	h.mu.Unlock()

	var args []string
	if nodeargs, ok := optionString(opts, "nodeargs"); ok && nodeargs != "" {
		args = append(args, strings.Fields(nodeargs)...)
	}
	args = append(args, runScript, "--monitor="+req.GetMonitorAddress())
	if engine != "" {
		args = append(args, "--engine="+engine)
	}
	for _, kv := range [][2]string{
		{"project", req.GetProject()},
		{"stack", req.GetStack()},
		{"organization", req.GetOrganization()},
		{"root-directory", rootDir},
		{"pwd", programDir},
	} {
		if kv[1] != "" {
			args = append(args, "--"+kv[0]+"="+kv[1])
		}
	}
	if req.GetParallel() > 0 {
		args = append(args, fmt.Sprintf("--parallel=%d", req.GetParallel()))
	}
	if req.GetDryRun() {
		args = append(args, "--dry-run")
	}
	args = append(args, entry)
	args = append(args, req.GetArgs()...)

	config, err := json.Marshal(req.GetConfig())
	if err != nil {
		return nil, err
	}
	secretKeys := req.GetConfigSecretKeys()
	if secretKeys == nil {
		secretKeys = []string{}
	}
	secrets, err := json.Marshal(secretKeys)
	if err != nil {
		return nil, err
	}
	typescript := "true"
	if v, ok := optionString(opts, "typescript"); ok {
		typescript = v
	}
	env := append(os.Environ(),
		"PULUMI_CONFIG="+string(config),
		"PULUMI_CONFIG_SECRET_KEYS="+string(secrets),
		"PULUMI_NODEJS_TYPESCRIPT="+typescript,
	)
	if v, ok := optionString(opts, "tsconfig"); ok && v != "" {
		env = append(env, "PULUMI_NODEJS_TSCONFIG_PATH="+v)
	}

	cmd := exec.Command("node", args...)
	cmd.Dir = programDir
	cmd.Env = env
	cmd.Stdout = os.Stdout
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return &pulumirpc.RunResponse{Error: fmt.Sprintf("starting node: %v", err)}, nil
	}
	h.mu.Lock()
	h.running[cmd] = struct{}{}
	h.mu.Unlock()
	err = cmd.Wait()
	h.mu.Lock()
	delete(h.running, cmd)
	h.mu.Unlock()

	if err == nil {
		return &pulumirpc.RunResponse{}, nil
	}
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		if exitErr.ExitCode() == exitBail {
			return &pulumirpc.RunResponse{Bail: true}, nil
		}
		return &pulumirpc.RunResponse{Error: fmt.Sprintf("Program exited with non-zero exit code: %d",
			exitErr.ExitCode())}, nil
	}
	return &pulumirpc.RunResponse{Error: err.Error()}, nil
}
