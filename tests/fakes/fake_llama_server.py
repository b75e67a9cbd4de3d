"""A scripted stand-in for llama-server, for fault injection only.

Behaviour comes from ``FAKE_MODE`` in the environment:
  normal       loads for FAKE_LOAD_S seconds (503), then answers /health 200
  crash_load   prints an error like a failed model load and exits 1
  oom_load     prints a CUDA out-of-memory line and exits 1
  hang_load    answers 503 forever
  ignore_term  like normal, but ignores SIGTERM
  grandchild   like normal, and forks a child that sleeps in the same process group
  old_help     like normal, but --help shows an old server (bare --flash-attn, no --n-cpu-moe)
  never_generate  like normal, but a chat request gets its 200 headers and then never a byte
  missing_file    prints llama.cpp's "failed to open GGUF file" line and exits 1
  bad_flag        prints llama.cpp's "invalid argument" line and exits 1
  crash_ready     like normal, then dies of SIGSEGV FAKE_CRASH_AFTER_S seconds after loading
  oom_generate    like normal, but a chat request prints a CUDA out-of-memory error and a long
                  backtrace (more lines than a short log tail), then dies of SIGABRT
  flood           like normal, and once listening writes FAKE_FLOOD_BYTES-long lines to stdout
                  without pause (default 5,000 bytes)
  junk_help       --help and --version print random bytes (not UTF-8, no llama-server options)
  hang_help       --help starts a child that sleeps in its process group, then hangs

FAKE_LOG_LINE (any text, escapes included) is printed once to stderr at start; ``main: model
loaded`` goes to stderr once loaded (FAKE_LOADED_LINE_DELAY_S later than /health's 200), and FAKE_PROPS_MODEL
is what ``GET /props`` gives as ``model_path`` (404 without it): hostile text from a server.

In every serving mode POST /v1/chat/completions streams FAKE_TOKENS words ("w0 w1 ..."), one
every FAKE_TOKEN_DELAY_S seconds, as OpenAI chunks, then [DONE]. With LLAMA_API_KEY set, a chat
request without ``Authorization: Bearer <key>`` gets 401, and the key is printed once to the log
(so tests can see that coder-tui redacts it).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MODERN_HELP = """\
-m,    --model FNAME                    model path
--host HOST                             ip address to listen
--port PORT                             port to listen (default: 8080)
-c,    --ctx-size N                     size of the prompt context
-ngl,  --gpu-layers, --n-gpu-layers N   max. number of layers to store in VRAM
-ncmoe, --n-cpu-moe N                   keep the MoE weights of the first N layers in the CPU
-b,    --batch-size N                   logical maximum batch size
-ub,   --ubatch-size N                  physical maximum batch size
-ctk,  --cache-type-k TYPE              KV cache data type for K
-ctv,  --cache-type-v TYPE              KV cache data type for V
-fa,   --flash-attn [on|off|auto]       set Flash Attention use
-cb,   --cont-batching                  enable continuous batching
-nocb, --no-cont-batching               disable continuous batching
--jinja                                 use jinja template
-t,    --threads N                      number of threads
-lm,   --load-mode MODE                 model loading mode
--metrics                               enable prometheus compatible metrics endpoint
"""

OLD_HELP = """\
-m,    --model FNAME                    model path
--host HOST                             ip address to listen
--port PORT                             port to listen (default: 8080)
-c,    --ctx-size N                     size of the prompt context
-ngl,  --gpu-layers N                   number of layers to store in VRAM
-fa,   --flash-attn                     enable Flash Attention
-t,    --threads N                      number of threads
--no-mmap                               do not memory-map model
--metrics                               enable prometheus compatible metrics endpoint
"""


def _arg(argv: list[str], name: str, default: str) -> str:
    return argv[argv.index(name) + 1] if name in argv else default


def main() -> int:
    argv = sys.argv[1:]
    mode = os.environ.get("FAKE_MODE", "normal")
    if mode == "junk_help" and ("--help" in argv or "--version" in argv):
        sys.stdout.buffer.write(bytes(range(256)) * 8 + b"\xff\xfe\xc3(\n")
        return 0
    if mode == "hang_help" and "--help" in argv:
        if os.fork() == 0:
            time.sleep(600)
            os._exit(0)
        time.sleep(600)
        return 0
    if "--help" in argv:
        print(OLD_HELP if mode == "old_help" else MODERN_HELP)
        return 0
    if "--version" in argv:
        version = os.environ.get("FAKE_VERSION", "9999 (fake)")
        print(f"version: {version}\nbuilt with fake for testing", file=sys.stderr)
        return 0
    print(f"fake llama-server starting: {' '.join(argv)}", flush=True)
    if os.environ.get("FAKE_LOG_LINE"):
        print(os.environ["FAKE_LOG_LINE"], file=sys.stderr, flush=True)
    if mode == "crash_load":
        print(
            "llama_model_load: error loading model: tensor 'blk.0' data is not within the file",
            file=sys.stderr,
            flush=True,
        )
        print("main: error: failed to load model", file=sys.stderr, flush=True)
        return 1
    if mode == "oom_load":
        print(
            "ggml_backend_cuda_buffer_type_alloc_buffer: allocating 9000 MiB on device 0: "
            "cudaMalloc failed: out of memory",
            file=sys.stderr,
            flush=True,
        )
        return 1
    if mode == "missing_file":
        model = _arg(argv, "-m", "model.gguf")
        print(
            f"gguf_init_from_file: failed to open GGUF file '{model}' (No such file or directory)",
            file=sys.stderr,
            flush=True,
        )
        return 1
    if mode == "bad_flag":
        print("error: invalid argument: --bogus-flag", file=sys.stderr, flush=True)
        return 1
    key = os.environ.get("LLAMA_API_KEY")
    if key:
        print(f"fake: LLAMA_API_KEY={key} (a real server never prints it)", flush=True)
    if mode == "ignore_term":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if mode == "grandchild" and os.fork() == 0:
        time.sleep(600)
        os._exit(0)
    load_s = float(os.environ.get("FAKE_LOAD_S", "0.3"))
    started = time.monotonic()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            loading = mode == "hang_load" or time.monotonic() - started < load_s
            props_model = os.environ.get("FAKE_PROPS_MODEL")
            if self.path == "/props" and props_model:
                code, body = 200, json.dumps({"model_path": props_model}).encode()
            elif self.path == "/health":
                code, body = (
                    (503, b'{"error":{"message":"Loading model"}}')
                    if loading
                    else (200, b'{"status":"ok"}')
                )
            else:
                code, body = 404, b"{}"
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(length)
            if self.path != "/v1/chat/completions":
                self.send_error(404)
                return
            if key and self.headers.get("Authorization") != f"Bearer {key}":
                body = b'{"error":{"code":401,"message":"Invalid API Key"}}'
                self.send_response(401)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            self.wfile.flush()
            if mode == "never_generate":
                time.sleep(600)
                return
            if mode == "oom_generate":
                print("CUDA error: out of memory", flush=True)
                print("  current device: 0, in function alloc at ggml-cuda.cu:451", flush=True)
                for i in range(80):
                    print(f"#{i} 0x00007f0000{i:04x} in ggml_backend_sched_graph_compute ()")
                sys.stdout.flush()
                os.kill(os.getpid(), signal.SIGABRT)
            n = int(os.environ.get("FAKE_TOKENS", "40"))
            delay = float(os.environ.get("FAKE_TOKEN_DELAY_S", "0.01"))
            try:
                for i in range(n):
                    self._chunk({"choices": [{"index": 0, "delta": {"content": f"w{i} "}}]})
                    time.sleep(delay)
                self._chunk({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
                self.wfile.write(b"data: [DONE]\n\n")
                self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):
                return

        def _chunk(self, obj: dict[str, object]) -> None:
            self.wfile.write(b"data: " + json.dumps(obj).encode() + b"\n\n")
            self.wfile.flush()

        def log_message(self, fmt: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(
        (_arg(argv, "--host", "127.0.0.1"), int(_arg(argv, "--port", "8080"))), Handler
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print("main: server is listening", flush=True)
    if mode != "hang_load":
        threading.Thread(target=_say_loaded, args=(load_s,), daemon=True).start()
    if mode == "flood":
        line = b"x" * int(os.environ.get("FAKE_FLOOD_BYTES", "5000")) + b"\n"
        try:
            while True:
                sys.stdout.buffer.write(line)
        except (BrokenPipeError, OSError):
            return 0
    if mode == "crash_ready":
        time.sleep(load_s + float(os.environ.get("FAKE_CRASH_AFTER_S", "0.3")))
        print("fake: crashing now", flush=True)
        os.kill(os.getpid(), signal.SIGSEGV)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        return 0


def _say_loaded(load_s: float) -> None:
    """llama-server's ``model loaded`` line, FAKE_LOADED_LINE_DELAY_S after /health says 200
    (0 by default; a real server writes it first, but a reader may get it after the answer)."""
    time.sleep(load_s + float(os.environ.get("FAKE_LOADED_LINE_DELAY_S", "0")))
    print("main: model loaded", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
