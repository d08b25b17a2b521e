//! genjit's integration tests, built as one binary to keep LLVM link time down.

mod api;
mod differential;
mod errors;
mod fuzz_corpus;
mod heap;
mod leak;
mod model;
mod proptests;
mod redirect;

/// Runs test `name` (its path in this binary) in a child process of its own and returns the child's
/// output, or `None` when called in that child (the caller then does the work). For tests whose memory
/// figures must not mix with other tests', or whose 100,000 registered modules would make other tests'
/// unwinding slow (libgcc 12 searches registered `.eh_frame`s linearly).
fn in_child(name: &str) -> Option<std::process::Output> {
    if std::env::var("GENJIT_CHILD_TEST").is_ok_and(|t| t == name) {
        return None;
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env("GENJIT_CHILD_TEST", name)
        .output()
        .unwrap();
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "child test {name} failed: {}", String::from_utf8_lossy(&out.stdout));
    Some(out)
}
