//! Isolated compilation: LLVM in worker processes, so that nothing it does can end the host.
//!
//! A diagnostic handler turns LLVM's reportable errors into typed errors (see `diagnostics`), but LLVM
//! reports some failures only fatally: `report_fatal_error` ("Cannot select" for another target's
//! intrinsic) aborts, and a bug in LLVM crashes. With [`JitBuilder::isolate`](crate::JitBuilder::isolate)
//! genjit parses, verifies, optimizes and emits each module in a worker process and links the returned
//! object itself, exactly as an object source; the worker's death becomes
//! [`Error::CompilerCrashed`](crate::Error::CompilerCrashed) naming the module and the signal or LLVM's
//! last words, and the JIT is unchanged. Workers also bound LLVM's own memory growth (PostgreSQL recreates
//! its LLVM context every 100 compiles for that reason): each is replaced after a set number of compiles.
//!
//! ## Workers
//! A worker is any executable that calls [`serve_compile_worker`] when started with the arguments it was
//! configured with: the `genjit` command does with `genjit compile-worker`; a host can build its own.
//! The pool starts workers on demand up to its size, hands each compile to an idle one, and replaces a
//! worker that died or reached its recycle count. A source that is a Rust closure (`Source::build`) cannot
//! cross a process boundary and is compiled in-process; dumps are written by the host's in-process path
//! only.
//!
//! ## Wire format
//! The worker first writes the line `genjit compile worker` on stdout; the client skips anything before
//! it (a host's banner, a test harness's chatter). Then frames on the worker's stdin/stdout, each a little-endian `u32` length and that many bytes. A request
//! is `name, level, kind, bytes`; a response is a tag (0: compiled, 1: error) followed by the object, the
//! signatures (name, calling convention, varargs, return and parameter spellings) and the four compile
//! timings, or by an error kind and its fields. Strings and byte strings are length-prefixed.

use super::source::SourceKind;
use super::{compile, ir_type, Compiled, OptLevel, Source};
use crate::error::{Error, Result};
use crate::signature::{IrType, Signature};
use crate::timings::ModuleTimings;
use parking_lot::{Condvar, Mutex};
use std::collections::HashMap;
use std::ffi::OsString;
use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Duration;

/// How to run compile workers (see the module docs).
#[derive(Clone, Debug)]
pub struct Isolation {
    program: PathBuf,
    args: Vec<OsString>,
    envs: Vec<(OsString, OsString)>,
    workers: usize,
    recycle_after: usize,
    timeout: Option<std::time::Duration>,
}

impl Isolation {
    /// Workers started as `program args...`; that program must call [`serve_compile_worker`].
    /// One worker by default, each replaced after 100 compiles.
    pub fn command(program: impl Into<PathBuf>, args: impl IntoIterator<Item = impl Into<OsString>>) -> Self {
        Isolation {
            program: program.into(),
            args: args.into_iter().map(Into::into).collect(),
            envs: Vec::new(),
            workers: 1,
            recycle_after: 100,
            timeout: None,
        }
    }

    /// Sets an environment variable for the workers.
    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        self.envs.push((key.into(), value.into()));
        self
    }

    /// How many workers may compile at once (at least 1).
    pub fn workers(mut self, n: usize) -> Self {
        self.workers = n.max(1);
        self
    }

    /// How many modules a worker compiles before it is replaced (at least 1).
    pub fn recycle_after(mut self, n: usize) -> Self {
        self.recycle_after = n.max(1);
        self
    }

    /// The longest one compile may take: a worker that has not answered by then is killed and the add
    /// fails with [`Error::CompileTimeout`] (a pathological module, or LLVM stuck in a loop, cannot hang
    /// the caller). No limit by default.
    pub fn timeout(mut self, limit: std::time::Duration) -> Self {
        self.timeout = Some(limit);
        self
    }
}

// ---------------------------------------------------------------------------------------------------------
// Encoding.

fn put(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(bytes);
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn bytes(&mut self) -> io::Result<Vec<u8>> {
        let bad = || io::Error::new(io::ErrorKind::InvalidData, "truncated compile-worker frame");
        let len = self.0.get(..4).ok_or_else(bad)?;
        let len = u32::from_le_bytes(len.try_into().expect("4 bytes")) as usize;
        let bytes = self.0.get(4..4 + len).ok_or_else(bad)?.to_vec();
        self.0 = &self.0[4 + len..];
        Ok(bytes)
    }

    fn string(&mut self) -> io::Result<String> {
        String::from_utf8(self.bytes()?).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    }

    fn u64(&mut self) -> io::Result<u64> {
        let b = self.bytes()?;
        Ok(u64::from_le_bytes(
            b.try_into().map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "bad u64"))?,
        ))
    }
}

fn write_frame(w: &mut impl Write, payload: &[u8]) -> io::Result<()> {
    w.write_all(&(payload.len() as u32).to_le_bytes())?;
    w.write_all(payload)?;
    w.flush()
}

/// `None` on a clean end of stream.
fn read_frame(r: &mut impl Read) -> io::Result<Option<Vec<u8>>> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len) {
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        other => other?,
    }
    let mut payload = vec![0u8; u32::from_le_bytes(len) as usize];
    r.read_exact(&mut payload)?;
    Ok(Some(payload))
}

fn encode_request(name: &str, level: OptLevel, kind: u8, bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() + name.len() + 16);
    put(&mut out, name.as_bytes());
    put(&mut out, &[level.index() as u8, kind]);
    put(&mut out, bytes);
    out
}

fn encode_compiled(c: &Compiled) -> Vec<u8> {
    let mut out = vec![0u8];
    put(&mut out, &c.object);
    put(&mut out, &(c.signatures.len() as u64).to_le_bytes());
    for (name, s) in &c.signatures {
        put(&mut out, name.as_bytes());
        put(&mut out, &u64::from(s.call_conv).to_le_bytes());
        put(&mut out, &[u8::from(s.varargs)]);
        put(&mut out, s.ret.as_ref().map_or(String::new(), IrType::to_string).as_bytes());
        put(&mut out, &(s.params.len() as u64).to_le_bytes());
        for p in &s.params {
            put(&mut out, p.to_string().as_bytes());
        }
    }
    let t = &c.timings;
    for d in [t.parse, t.verify, t.optimize, t.emit] {
        put(&mut out, &(d.as_nanos() as u64).to_le_bytes());
    }
    out
}

fn encode_error(e: &Error) -> Vec<u8> {
    let mut out = vec![1u8];
    let (kind, fields): (u8, Vec<String>) = match e {
        Error::Parse { module, message } => (0, vec![module.clone(), message.clone()]),
        Error::Verify { module, message } => (1, vec![module.clone(), message.clone()]),
        Error::UnsupportedThreadLocal { module, symbol, reason } => {
            (3, vec![module.clone(), symbol.clone(), reason.clone()])
        }
        Error::Target(message) => (4, vec![message.clone()]),
        Error::Codegen { module, message } => (2, vec![module.clone(), message.clone()]),
        // Compiling yields no other error; keep its text if one ever appears.
        other => (2, vec![String::new(), other.to_string()]),
    };
    out.push(kind);
    for f in fields {
        put(&mut out, f.as_bytes());
    }
    out
}

fn decode_response(frame: &[u8]) -> io::Result<Result<Compiled>> {
    let (&tag, rest) = frame.split_first().ok_or_else(|| io::Error::other("empty response"))?;
    if tag == 1 {
        let (&kind, rest) = rest.split_first().ok_or_else(|| io::Error::other("empty error"))?;
        let mut r = Reader(rest);
        let mut s = || r.string();
        return Ok(Err(match kind {
            0 => Error::Parse { module: s()?, message: s()? },
            1 => Error::Verify { module: s()?, message: s()? },
            3 => Error::UnsupportedThreadLocal { module: s()?, symbol: s()?, reason: s()? },
            4 => Error::Target(s()?),
            _ => Error::Codegen { module: s()?, message: s()? },
        }));
    }
    let mut r = Reader(rest);
    let object = r.bytes()?;
    let mut signatures = HashMap::new();
    for _ in 0..r.u64()? {
        let name = r.string()?;
        let call_conv = r.u64()? as u32;
        let varargs = r.bytes()?.first() == Some(&1);
        let ret = r.string()?;
        let ret = (!ret.is_empty()).then(|| ir_type(&ret));
        let params = (0..r.u64()?).map(|_| r.string().map(|p| ir_type(&p))).collect::<io::Result<_>>()?;
        signatures.insert(name, Signature::new(params, ret, varargs).with_call_conv(call_conv));
    }
    let mut nanos = || r.u64().map(Duration::from_nanos);
    let timings = ModuleTimings {
        parse: nanos()?,
        verify: nanos()?,
        optimize: nanos()?,
        emit: nanos()?,
        ..Default::default()
    };
    Ok(Ok(Compiled::new(String::new(), object, signatures, timings)))
}

// ---------------------------------------------------------------------------------------------------------
// The worker.

/// What a worker writes before its first frame.
const MARKER: &[u8] = b"genjit compile worker\n";

/// Serves compile requests on stdin/stdout until stdin closes: the body of a compile worker's `main`
/// (see [`Isolation`]). LLVM may abort the process on bad input; that is what the worker is for.
pub fn serve_compile_worker() -> io::Result<()> {
    let (mut input, mut output) = (io::stdin().lock(), io::stdout().lock());
    // LLVM's first-use set-up (targets, a target machine per level, pass registries) happens before the
    // marker, so a compile's time limit measures the compile: on a loaded machine the set-up alone took
    // more than a 20 ms limit on a one-line module (`isolate::a_compile_past_its_time_limit_...`).
    for level in OptLevel::ALL {
        let warm_up = Source::ir_text("define i64 @genjit_warm_up() {\n  ret i64 0\n}\n");
        let _ = compile(warm_up, "warm-up".to_string(), level, &[]);
    }
    output.write_all(MARKER)?;
    output.flush()?;
    while let Some(frame) = read_frame(&mut input)? {
        let mut r = Reader(&frame);
        let name = r.string()?;
        let header = r.bytes()?;
        let bytes = r.bytes()?;
        let level =
            OptLevel::ALL.get(usize::from(*header.first().unwrap_or(&0))).copied().unwrap_or_default();
        let kind = match header.get(1) {
            Some(1) => SourceKind::Bitcode(bytes),
            _ => SourceKind::IrText(bytes),
        };
        let response = match compile(Source { name: Some(name.clone()), kind }, name, level, &[]) {
            Ok(c) => encode_compiled(&c),
            Err(e) => encode_error(&e),
        };
        write_frame(&mut output, &response)?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------------------
// The client.

struct Worker {
    child: Child,
    stdin: ChildStdin,
    stdout: ChildStdout,
    /// The thread reading the worker's stderr, which returns its last 8 KiB (LLVM's last words before an
    /// abort) once the pipe closes, that is once the worker is gone.
    stderr: Option<std::thread::JoinHandle<Vec<u8>>>,
    compiles: usize,
}

impl Worker {
    fn spawn(config: &Isolation) -> io::Result<Worker> {
        let mut child = Command::new(&config.program)
            .args(&config.args)
            .envs(config.envs.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let (stdin, stdout) = (child.stdin.take().expect("piped"), child.stdout.take().expect("piped"));
        let mut pipe = child.stderr.take().expect("piped");
        let stderr = std::thread::Builder::new().name("genjit-worker-stderr".into()).spawn(move || {
            let (mut tail, mut buf) = (Vec::new(), [0u8; 4096]);
            while let Ok(n @ 1..) = pipe.read(&mut buf) {
                tail.extend_from_slice(&buf[..n]);
                tail.drain(..tail.len().saturating_sub(8192));
            }
            tail
        })?;
        let mut worker = Worker { child, stdin, stdout, stderr: Some(stderr), compiles: 0 };
        worker.skip_to_marker()?;
        Ok(worker)
    }

    /// Reads stdout up to and including the worker's marker line.
    fn skip_to_marker(&mut self) -> io::Result<()> {
        let mut seen = Vec::new();
        let mut byte = [0u8; 1];
        while !seen.ends_with(MARKER) {
            if self.stdout.read(&mut byte)? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the compile worker exited before serving",
                ));
            }
            seen.push(byte[0]);
            if seen.len() > 1 << 16 {
                return Err(io::Error::other("the compile worker never announced itself"));
            }
        }
        Ok(())
    }

    fn round_trip(
        &mut self,
        request: &[u8],
        timeout: Option<std::time::Duration>,
    ) -> io::Result<Option<Vec<u8>>> {
        write_frame(&mut self.stdin, request)?;
        let until = timeout.map(|t| std::time::Instant::now() + t);
        read_frame(&mut Deadline { stdout: &mut self.stdout, until })
    }

    /// Why the worker is gone: its signal or exit status, and the last line LLVM printed.
    fn obituary(mut self) -> String {
        let status = self.child.wait().map(|s| s.to_string()).unwrap_or_else(|e| e.to_string());
        // The process is gone, so its stderr has closed and the reader returns what it read.
        let tail = self.stderr.take().and_then(|t| t.join().ok()).unwrap_or_default();
        let stderr = String::from_utf8_lossy(&tail);
        match stderr.lines().rev().find(|l| !l.trim().is_empty()) {
            Some(last) => format!("{status}: {}", last.trim()),
            None => status,
        }
    }
}

/// The worker's stdout, read with a deadline: each read first polls until the data comes or time is up
/// (`ErrorKind::TimedOut`).
struct Deadline<'a> {
    stdout: &'a mut ChildStdout,
    until: Option<std::time::Instant>,
}

impl Read for Deadline<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(until) = self.until {
            use rustix::event::{poll, PollFd, PollFlags, Timespec};
            loop {
                let left = until.saturating_duration_since(std::time::Instant::now());
                if left.is_zero() {
                    return Err(io::Error::new(io::ErrorKind::TimedOut, "the compile worker did not answer"));
                }
                let timeout =
                    Timespec { tv_sec: left.as_secs() as i64, tv_nsec: i64::from(left.subsec_nanos()) };
                let mut fds = [PollFd::new(&*self.stdout, PollFlags::IN)];
                match poll(&mut fds, Some(&timeout)) {
                    Ok(0) => continue,
                    Ok(_) => break,
                    Err(rustix::io::Errno::INTR) => continue,
                    Err(e) => return Err(e.into()),
                }
            }
        }
        self.stdout.read(buf)
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        // Closing stdin ends the serve loop; kill in case it is stuck.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A pool of compile workers (see the module docs).
pub(crate) struct Pool {
    config: Isolation,
    /// Workers started so far (replacements of dead and recycled ones included).
    started: std::sync::atomic::AtomicU64,
    idle: Mutex<Vec<Worker>>,
    /// Workers alive (idle or busy).
    alive: Mutex<usize>,
    returned: Condvar,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool").field("config", &self.config).finish()
    }
}

impl Pool {
    pub(crate) fn new(config: Isolation) -> Pool {
        Pool {
            config,
            started: std::sync::atomic::AtomicU64::new(0),
            idle: Mutex::new(Vec::new()),
            alive: Mutex::new(0),
            returned: Condvar::new(),
        }
    }

    /// Workers started so far.
    pub(crate) fn started(&self) -> u64 {
        // Relaxed: a statistic.
        self.started.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn take(&self) -> io::Result<Worker> {
        loop {
            if let Some(w) = self.idle.lock().pop() {
                return Ok(w);
            }
            let mut alive = self.alive.lock();
            if *alive < self.config.workers {
                *alive += 1;
                drop(alive);
                // Relaxed: a statistic.
                self.started.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                return Worker::spawn(&self.config).inspect_err(|_| *self.alive.lock() -= 1);
            }
            self.returned.wait_for(&mut alive, Duration::from_millis(50));
        }
    }

    fn give_back(&self, worker: Option<Worker>) {
        match worker {
            Some(w) if w.compiles < self.config.recycle_after => self.idle.lock().push(w),
            _ => *self.alive.lock() -= 1,
        }
        self.returned.notify_one();
    }

    /// Compiles `source` in a worker; sources that cannot cross processes compile here.
    pub(crate) fn compile(&self, source: Source, name: String, level: OptLevel) -> Result<Compiled> {
        let name = source.name.clone().unwrap_or(name);
        let (kind, bytes) = match source.kind {
            SourceKind::IrText(b) => (0, b),
            SourceKind::Bitcode(b) => (1, b),
            kind => return compile(Source { name: Some(name.clone()), kind }, name, level, &[]),
        };
        let _span =
            tracing::debug_span!("compile", module = %name, level = %level, isolated = true).entered();
        let crashed = |reason: String| Error::CompilerCrashed { module: name.clone(), reason };
        let mut worker = self.take().map_err(|e| crashed(format!("cannot start a compile worker: {e}")))?;
        worker.compiles += 1;
        match worker.round_trip(&encode_request(&name, level, kind, &bytes), self.config.timeout) {
            Ok(Some(frame)) => {
                self.give_back(Some(worker));
                let mut compiled = decode_response(&frame).map_err(|e| crashed(e.to_string()))??;
                compiled.name = name;
                Ok(compiled)
            }
            Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                // Dropping the worker kills it; a fresh one serves the next compile.
                drop(worker);
                self.give_back(None);
                Err(Error::CompileTimeout { module: name, limit: self.config.timeout.unwrap_or_default() })
            }
            // End of stream or a broken pipe: the worker died on this module.
            Ok(None) | Err(_) => {
                let reason = worker.obituary();
                self.give_back(None);
                Err(crashed(reason))
            }
        }
    }
}
