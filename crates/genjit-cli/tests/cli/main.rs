//! The `genjit` command's tests, built as one binary: the differential suite against `lli-19` and the
//! command line's own conventions (help, version, exit codes, error messages).

mod cli;
mod differential;
