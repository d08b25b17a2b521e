//! An interleaving harness: engines alternate inside one measurement loop.
//!
//! On a shared 2-core machine the load shifts by 10-30% between blocks of seconds, so timing each engine in
//! its own block (criterion's way) can put an engine "below its own floor" (../shared/LLVM-NOTES.md). Here
//! every round runs each contestant once, for a batch of iterations, in an order that rotates from round
//! to round; a round's ratios compare runs made moments apart. The report gives each contestant's median
//! time per iteration with its 10th-90th percentile band, and the median and band of the per-round ratio
//! to a named baseline.

#![allow(dead_code)]

use std::time::{Duration, Instant};

/// One engine in a contest: a name and a closure that runs one iteration.
pub struct Contestant<'a> {
    pub name: &'static str,
    pub run: Box<dyn FnMut() + 'a>,
}

impl<'a> Contestant<'a> {
    pub fn new(name: &'static str, run: impl FnMut() + 'a) -> Self {
        Contestant { name, run: Box::new(run) }
    }
}

/// Per-iteration times, one per round, for each contestant.
pub struct Results {
    pub title: String,
    pub names: Vec<&'static str>,
    pub samples: Vec<Vec<f64>>,
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

fn band(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    (percentile(&v, 0.5), percentile(&v, 0.1), percentile(&v, 0.9))
}

/// Runs `rounds` rounds (after one warm-up round) of `batch` iterations per contestant.
pub fn contest(title: &str, rounds: usize, batch: usize, contestants: &mut [Contestant<'_>]) -> Results {
    let n = contestants.len();
    let mut samples = vec![Vec::with_capacity(rounds); n];
    for round in 0..=rounds {
        for k in 0..n {
            let i = (k + round) % n;
            let start = Instant::now();
            for _ in 0..batch {
                (contestants[i].run)();
            }
            let per = start.elapsed().as_secs_f64() / batch as f64;
            if round > 0 {
                samples[i].push(per);
            }
        }
    }
    Results { title: title.to_string(), names: contestants.iter().map(|c| c.name).collect(), samples }
}

/// A contestant that times itself: a name and a closure returning the time per unit of work.
pub type Timed<'a> = (&'static str, Box<dyn FnMut() -> Duration + 'a>);

/// Like [`contest`], for contestants that time themselves (e.g. a workload reporting its own rate):
/// each closure returns the measured time per unit of work.
pub fn contest_timed(title: &str, rounds: usize, contestants: &mut [Timed<'_>]) -> Results {
    let n = contestants.len();
    let mut samples = vec![Vec::with_capacity(rounds); n];
    for round in 0..=rounds {
        for k in 0..n {
            let i = (k + round) % n;
            let per = (contestants[i].1)().as_secs_f64();
            if round > 0 {
                samples[i].push(per);
            }
        }
    }
    Results { title: title.to_string(), names: contestants.iter().map(|c| c.0).collect(), samples }
}

fn human(seconds: f64) -> String {
    match seconds {
        s if s < 1e-6 => format!("{:.2} ns", s * 1e9),
        s if s < 1e-3 => format!("{:.1} us", s * 1e6),
        s if s < 1.0 => format!("{:.2} ms", s * 1e3),
        s => format!("{s:.2} s"),
    }
}

impl Results {
    fn index(&self, name: &str) -> usize {
        self.names.iter().position(|n| *n == name).unwrap_or_else(|| panic!("no contestant {name}"))
    }

    /// Median time per iteration of `name`.
    pub fn median(&self, name: &str) -> f64 {
        band(self.samples[self.index(name)].clone()).0
    }

    /// Median and 10th-90th percentile band of `name`'s time over `base`'s, round by round.
    pub fn ratio(&self, name: &str, base: &str) -> (f64, f64, f64) {
        let (a, b) = (&self.samples[self.index(name)], &self.samples[self.index(base)]);
        band(a.iter().zip(b).map(|(x, y)| x / y).collect())
    }

    /// Prints a table: each contestant's median [p10-p90] and its per-round ratio to each of `bases`.
    pub fn print(&self, bases: &[&str]) {
        println!("\n{} ({} rounds, engines interleaved)", self.title, self.samples[0].len());
        for (i, name) in self.names.iter().enumerate() {
            let (m, lo, hi) = band(self.samples[i].clone());
            let mut line = format!("  {name:<18} {:>10}  [{} .. {}]", human(m), human(lo), human(hi));
            for base in bases.iter().filter(|b| *b != name) {
                let (r, rlo, rhi) = self.ratio(name, base);
                line.push_str(&format!("   {r:.2}x {base} [{rlo:.2} .. {rhi:.2}]"));
            }
            println!("{line}");
        }
    }
}
