//! What the benches share: the median of pair ratios, children that are
//! reaped on every way out, and a scratch directory removed when done.

#![allow(dead_code)]

use std::fs;
use std::path::PathBuf;
use std::process::Child;

/// The median of `values` (0 for none).
pub fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.is_empty() {
        0.0
    } else if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    }
}

/// A child killed and reaped when dropped, so that a failed run leaves none.
pub struct Reaped(pub Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A scratch directory, removed when dropped.
pub struct WorkDir(pub PathBuf);

impl WorkDir {
    /// `NAME-PID` in the system's temporary directory.
    pub fn new(name: &str) -> WorkDir {
        let dir = std::env::temp_dir().join(format!("{name}-{}", std::process::id()));
        fs::create_dir_all(&dir).expect("create the bench directory");
        WorkDir(dir)
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}
