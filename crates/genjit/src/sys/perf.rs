//! How Linux `perf` names JIT code: a perf map and a jitdump file.
//!
//! genjit's code lives in a memfd mapped twice (see `heap`). `perf` (6.1 at least) treats a memfd mapping
//! like a file, not like anonymous memory, so it never consults the simple **perf map**
//! (`/tmp/perf-<pid>.map`, lines of `START SIZE name`) for it. genjit writes the map anyway, for the tools
//! that look addresses up in it directly (bcc, bpftrace), and a **jitdump** file for `perf` itself:
//!
//! ```text
//! perf record -k mono -g -- genjit run --perf-map prog.ll   # -k mono: jitdump timestamps are CLOCK_MONOTONIC
//! perf inject --jit -i perf.data -o perf.jit.data           # one ELF per function, from the dump
//! perf report -i perf.jit.data
//! ```
//!
//! The jitdump (`/tmp/jit-<pid>.dump`, or under `$JITDUMPDIR`) is perf's documented format
//! (`tools/perf/Documentation/jitdump-specification.txt`): a header, then one `JIT_CODE_LOAD` record per
//! function with its address, size, name, a timestamp and a copy of its bytes. `perf record` learns of the
//! file because genjit maps one page of it executable (the *marker*); `perf inject` then turns the records
//! into symbols, and the timestamps let it tell apart two functions that used the same addresses at
//! different times, which the append-only perf map cannot. Every function of every published module is
//! recorded (local ones included) under `name [genjit:module]`, one `write` per module under a lock, so
//! concurrent adds never interleave. Writing is best effort: a profiler's aid never fails an add.

use crate::link::FunctionSymbol;
use parking_lot::Mutex;
use std::fs::File;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

const JITDUMP_MAGIC: u32 = 0x4A69_5444; // "JiTD" as read back little-endian
const JITDUMP_VERSION: u32 = 1;
const JIT_CODE_LOAD: u32 = 0;
const EM_X86_64: u32 = 62;

struct Files {
    map: Option<File>,
    dump: Option<File>,
}

/// The process's perf map and jitdump, opened on first use (shared by every `Jit` of the process).
fn files() -> &'static Mutex<Files> {
    static FILES: OnceLock<Mutex<Files>> = OnceLock::new();
    FILES.get_or_init(|| {
        let map = std::fs::OpenOptions::new().create(true).append(true).open(map_path()).ok();
        Mutex::new(Files { map, dump: open_dump() })
    })
}

/// Where this process's perf map is: `/tmp/perf-<pid>.map`.
pub(crate) fn map_path() -> PathBuf {
    PathBuf::from(format!("/tmp/perf-{}.map", std::process::id()))
}

/// Where this process's jitdump is: `$JITDUMPDIR/jit-<pid>.dump`, or `/tmp/jit-<pid>.dump`.
pub(crate) fn dump_path() -> PathBuf {
    let dir = std::env::var_os("JITDUMPDIR").map_or_else(|| PathBuf::from("/tmp"), PathBuf::from);
    dir.join(format!("jit-{}.dump", std::process::id()))
}

/// CLOCK_MONOTONIC in nanoseconds, the clock `perf record -k mono` stamps samples with.
fn monotonic_ns() -> u64 {
    let ts = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn open_dump() -> Option<File> {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .read(true)
        .open(dump_path())
        .ok()?;
    let mut header = Vec::with_capacity(40);
    for word in [JITDUMP_MAGIC, JITDUMP_VERSION, 40, EM_X86_64, 0, std::process::id()] {
        header.extend_from_slice(&word.to_le_bytes());
    }
    header.extend_from_slice(&monotonic_ns().to_le_bytes());
    header.extend_from_slice(&0u64.to_le_bytes()); // flags: timestamps are CLOCK_MONOTONIC
    file.write_all(&header).ok()?;
    super::map_marker(&file);
    Some(file)
}

/// One `JIT_CODE_LOAD` record for `f`, whose bytes are readable at its address.
fn code_load(out: &mut Vec<u8>, f: &FunctionSymbol, name: &str, index: u64, now: u64) {
    // SAFETY: `f` was just linked into a code block of the heap: `size` bytes at `addr` are mapped and
    // readable (through the executable view) and stay so while the module lives, which outlasts this call.
    let code = unsafe { std::slice::from_raw_parts(f.addr as *const u8, f.size) };
    let total = 16 + 40 + name.len() + 1 + code.len();
    out.extend_from_slice(&JIT_CODE_LOAD.to_le_bytes());
    out.extend_from_slice(&(total as u32).to_le_bytes());
    out.extend_from_slice(&now.to_le_bytes());
    out.extend_from_slice(&std::process::id().to_le_bytes());
    out.extend_from_slice(&(rustix::thread::gettid().as_raw_nonzero().get() as u32).to_le_bytes());
    for word in [f.addr as u64, f.addr as u64, f.size as u64, index] {
        out.extend_from_slice(&word.to_le_bytes());
    }
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    out.extend_from_slice(code);
}

/// Records every function of module `module` in the perf map and the jitdump.
pub(crate) fn record(module: &str, functions: &[FunctionSymbol]) {
    if functions.is_empty() {
        return;
    }
    static INDEX: AtomicU64 = AtomicU64::new(0);
    let mut lines = String::new();
    let mut records = Vec::new();
    let now = monotonic_ns();
    for f in functions {
        let name = format!("{} [genjit:{module}]", f.name);
        lines.push_str(&format!("{:x} {:x} {name}\n", f.addr, f.size.max(1)));
        // Relaxed: the index only needs to be unique.
        code_load(&mut records, f, &name, INDEX.fetch_add(1, Ordering::Relaxed), now);
    }
    let mut files = files().lock();
    if let Some(map) = files.map.as_mut() {
        let _ = map.write_all(lines.as_bytes());
    }
    if let Some(dump) = files.dump.as_mut() {
        let _ = dump.write_all(&records);
    }
}
