//! What a host can observe without reading `/proc`: per-module timings and sizes, per-dylib totals, the
//! heap's own mapping count; and that an idle JIT costs no CPU.

use genjit::{Jit, Source};
use std::time::Duration;

const F: &str = "@counter = global i64 0\ndefine i64 @f(i64 %x) {\n  %r = add i64 %x, 1\n  ret i64 %r\n}\n";

#[test]
fn every_module_reports_its_phase_timings_and_sizes() {
    let jit = Jit::builder().opt_level(genjit::OptLevel::O2).build().unwrap();
    let d = jit.create_dylib("t").unwrap();
    let m = d.add_module(Source::ir_text(F).named("f")).unwrap();
    let t = m.timings();
    for (phase, d) in [
        ("parse", t.parse),
        ("verify", t.verify),
        ("optimize", t.optimize),
        ("emit", t.emit),
        ("link", t.link),
        ("publish", t.publish),
    ] {
        assert!(d > Duration::ZERO, "{phase} took no time: {t:?}");
    }
    assert_eq!(t.total(), t.parse + t.verify + t.optimize + t.emit + t.link + t.publish + t.constructors);
    assert!(t.to_string().starts_with("parse "), "{t}");
    let (code, data) = m.heap_bytes();
    assert!(code >= 16 && data >= 8, "code {code}, data {data}");
    // The handle from `modules()` reports the same figures; an object source has no compile phases.
    assert_eq!(d.modules()[0].timings(), t);
    let jit0 = Jit::new().unwrap();
    let o0 = jit0.create_dylib("o0").unwrap().add_module(Source::ir_text(F)).unwrap();
    assert_eq!(o0.timings().optimize, Duration::ZERO, "no IR passes at O0");
}

#[test]
fn stats_total_each_dylib_without_proc() {
    let jit = Jit::new().unwrap();
    let a = jit.create_dylib("a").unwrap();
    let b = jit.create_dylib("b").unwrap();
    let m1 = a.add_module(Source::ir_text(F)).unwrap();
    let m2 = b.add_module(Source::ir_text(F.replace("@f", "@g").replace("@counter", "@c2"))).unwrap();
    let m3 = b.add_module(Source::ir_text("define i64 @h() {\n  ret i64 3\n}\n")).unwrap();
    let stats = jit.stats();
    let of = |name: &str| stats.dylibs.iter().find(|d| d.name == name).unwrap().clone();
    let (sa, sb) = (of("a"), of("b"));
    assert_eq!((sa.modules, sa.symbols, sb.modules, sb.symbols), (1, 2, 2, 3));
    assert_eq!((sa.code_bytes, sa.data_bytes), m1.heap_bytes());
    assert_eq!(sb.code_bytes, m2.heap_bytes().0 + m3.heap_bytes().0);
    assert_eq!(sb.data_bytes, m2.heap_bytes().1 + m3.heap_bytes().1);
    assert_eq!(stats.modules, 3);
    // Two generations (code: two views; data: one) and the reservation's pieces around them.
    assert!((3..=8).contains(&stats.heap_mappings), "{}", stats.heap_mappings);
    b.remove_module(&m3).unwrap();
    let sb = jit.stats().dylibs.into_iter().find(|d| d.name == "b").unwrap();
    assert_eq!((sb.modules, sb.code_bytes, sb.data_bytes), (1, m2.heap_bytes().0, m2.heap_bytes().1));
}

/// Voluntary context switches of the process's thread called `name` (each wake-up from a sleep is one).
fn wakeups(name: &str) -> Option<u64> {
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let dir = task.ok()?.path();
        if std::fs::read_to_string(dir.join("comm")).ok()?.trim() == name {
            let status = std::fs::read_to_string(dir.join("status")).ok()?;
            let line = status.lines().find(|l| l.starts_with("voluntary_ctxt_switches:"))?;
            return line.split_whitespace().nth(1)?.parse().ok();
        }
    }
    None
}

#[test]
fn an_idle_jit_does_not_wake_the_reclaimer() {
    // Own process: other tests retire modules all the time, which (rightly) keeps the reclaimer busy.
    if crate::in_child("observe::an_idle_jit_does_not_wake_the_reclaimer").is_some() {
        return;
    }
    let jit = Jit::new().unwrap();
    let d = jit.create_dylib("idle").unwrap();
    let m = d.add_module(Source::ir_text(F)).unwrap();
    d.remove_module(&m).unwrap();
    assert!(jit.reclaim(Duration::from_secs(5)));
    std::thread::sleep(Duration::from_millis(50));
    let before = wakeups("genjit-reclaime").expect("the reclaimer thread exists");
    std::thread::sleep(Duration::from_secs(3));
    let idle = wakeups("genjit-reclaime").unwrap() - before;
    // One wake-up a second for the clock; the old design woke every 2 ms (~1,500 in 3 s).
    assert!(idle <= 5, "{idle} wake-ups in 3 idle seconds");
    // A retirement still wakes it at once: memory comes back without anyone asking.
    let m = d.add_module(Source::ir_text(F)).unwrap();
    d.remove_module(&m).unwrap();
    let start = std::time::Instant::now();
    while jit.stats().awaiting_bytes > 0 {
        assert!(start.elapsed() < Duration::from_millis(500), "retirement did not wake the reclaimer");
        std::thread::sleep(Duration::from_millis(1));
    }
    eprintln!("idle wake-ups in 3 s: {idle}; reclaimed {:?} after removal", start.elapsed());
}

#[test]
fn perf_map_names_every_function_at_its_body() {
    let jit = Jit::builder().perf_map(true).build().unwrap();
    let d = jit.create_dylib("perf").unwrap();
    let src = "define internal i64 @helper(i64 %x) {\n  %r = mul i64 %x, 3\n  ret i64 %r\n}\n\
               define i64 @perf_visible(i64 %x) {\n  %r = call i64 @helper(i64 %x)\n  ret i64 %r\n}\n";
    d.add_module(Source::ir_text(src).named("perfmod")).unwrap();
    let f = d.lookup::<fn(i64) -> i64>("perf_visible").unwrap();
    assert_eq!(f.call(2), 6);
    let body = f.current_address(&jit.pin()).unwrap();
    let map = std::fs::read_to_string(format!("/tmp/perf-{}.map", std::process::id())).unwrap();
    let line = |name: &str| {
        map.lines()
            .filter(|l| l.ends_with(&format!(" {name} [genjit:perfmod]")))
            .map(|l| {
                let mut f = l.split(' ');
                let addr = usize::from_str_radix(f.next().unwrap(), 16).unwrap();
                let size = usize::from_str_radix(f.next().unwrap(), 16).unwrap();
                (addr, size)
            })
            .next_back()
            .unwrap_or_else(|| panic!("no line for {name} in the perf map"))
    };
    let (addr, size) = line("perf_visible");
    assert_eq!(addr, body, "the map points at the body, not the entry stub");
    assert!(size > 0 && size < 4096, "{size}");
    let (helper, _) = line("helper");
    let (start, end) = jit.heap_range();
    assert!((start..end).contains(&helper), "local functions are named too");
}

#[test]
fn jitdump_records_each_function_with_its_code() {
    // The jitdump is process-wide; `perf_map_names_every_function_at_its_body` may write to it too, so
    // look for this test's own module.
    let jit = Jit::builder().perf_map(true).opt_level(genjit::OptLevel::O2).build().unwrap();
    let d = jit.create_dylib("dump").unwrap();
    let src = "define i64 @dumped(i64 %x) {\n  %r = mul i64 %x, 7\n  ret i64 %r\n}\n";
    d.add_module(Source::ir_text(src).named("dumpmod")).unwrap();
    let f = d.lookup::<fn(i64) -> i64>("dumped").unwrap();
    let pinned = jit.pin();
    let body = f.current_address(&pinned).unwrap();
    let dump = std::fs::read(format!("/tmp/jit-{}.dump", std::process::id())).unwrap();
    let u32_at = |b: &[u8], o: usize| u32::from_le_bytes(b[o..o + 4].try_into().unwrap());
    let u64_at = |b: &[u8], o: usize| u64::from_le_bytes(b[o..o + 8].try_into().unwrap());
    assert_eq!(u32_at(&dump, 0), 0x4A69_5444, "magic");
    assert_eq!(
        (u32_at(&dump, 4), u32_at(&dump, 8), u32_at(&dump, 12)),
        (1, 40, 62),
        "version, header size, x86-64"
    );
    assert_eq!(u32_at(&dump, 20), std::process::id());
    let mut at = 40;
    let mut found = None;
    while at + 16 <= dump.len() {
        let (id, size) = (u32_at(&dump, at), u32_at(&dump, at + 4) as usize);
        assert_eq!(id, 0, "only JIT_CODE_LOAD records");
        let rec = &dump[at..at + size];
        let name_end = 56 + rec[56..].iter().position(|&b| b == 0).unwrap();
        if &rec[56..name_end] == b"dumped [genjit:dumpmod]" {
            found = Some((u64_at(rec, 24), u64_at(rec, 32), u64_at(rec, 40), rec[name_end + 1..].to_vec()));
        }
        at += size;
    }
    assert_eq!(at, dump.len(), "records tile the file");
    let (vma, addr, size, code) = found.expect("a record for `dumped`");
    assert_eq!((vma as usize, addr as usize), (body, body));
    assert_eq!(code.len(), size as usize);
    // SAFETY: the body is mapped while `pinned` lives; we only read its bytes.
    let live = unsafe { std::slice::from_raw_parts(body as *const u8, size as usize) };
    assert_eq!(code, live, "the record carries the function's bytes");
}

/// GDB's list of JIT objects (libLLVM's `__jit_debug_descriptor`), walked as a debugger would.
fn gdb_entries() -> Vec<(usize, u64)> {
    #[repr(C)]
    struct Entry {
        next: *const Entry,
        prev: *const Entry,
        addr: *const u8,
        size: u64,
    }
    #[repr(C)]
    struct Descriptor {
        version: u32,
        action: u32,
        relevant: *const Entry,
        first: *const Entry,
    }
    extern "C" {
        static __jit_debug_descriptor: Descriptor;
    }
    let mut out = Vec::new();
    // SAFETY: the list is only changed under genjit's lock by threads that are not running now (the
    // caller's JITs are idle); every entry is a live, boxed `jit_code_entry`.
    unsafe {
        let mut e = (*std::ptr::addr_of!(__jit_debug_descriptor)).first;
        while !e.is_null() {
            out.push(((*e).addr as usize, (*e).size));
            e = (*e).next;
        }
    }
    out
}

#[test]
fn gdb_registration_lives_exactly_as_long_as_the_module() {
    // Own process: other tests' JITs (without `gdb`) add nothing to the list, but keep it simple.
    if crate::in_child("observe::gdb_registration_lives_exactly_as_long_as_the_module").is_some() {
        return;
    }
    let jit = Jit::builder().gdb(true).build().unwrap();
    let d = jit.create_dylib("gdb").unwrap();
    let before = gdb_entries().len();
    let a = d.add_module(Source::ir_text(F)).unwrap();
    let b = d.add_module(Source::ir_text("define i64 @g() {\n  ret i64 2\n}\n")).unwrap();
    let entries = gdb_entries();
    assert_eq!(entries.len(), before + 2);
    // Each registered object is an ELF file whose `.text` address is inside the heap.
    let (addr, size) = entries[0];
    // SAFETY: the entry's bytes are the registration's boxed object, alive while the module is.
    let object = unsafe { std::slice::from_raw_parts(addr as *const u8, size as usize) };
    assert_eq!(&object[..4], b"\x7fELF");
    d.remove_module(&a).unwrap();
    assert!(jit.reclaim(Duration::from_secs(5)));
    assert_eq!(gdb_entries().len(), before + 1, "unregistered when its memory was freed");
    d.remove_module(&b).unwrap();
    assert!(jit.reclaim(Duration::from_secs(5)));
    assert_eq!(gdb_entries().len(), before);
    // Without `gdb(true)`, nothing is registered.
    let plain = Jit::new().unwrap().create_dylib("plain").unwrap();
    plain.add_module(Source::ir_text(F)).unwrap();
    assert_eq!(gdb_entries().len(), before);
}
