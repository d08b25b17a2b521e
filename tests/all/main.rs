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
