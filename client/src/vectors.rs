//! Locating the public test vectors in `../shared/vectors` (override with
//! `XINLIAN_VECTORS`). Outside CI a missing folder skips the tests that need it, with a
//! message; under CI (`CI=true`) it is a failure.

use std::path::PathBuf;

/// The vectors folder, or `None` (after saying so) when absent outside CI.
pub fn dir() -> Option<PathBuf> {
    let dir = std::env::var_os("XINLIAN_VECTORS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/vectors"))
        });
    if dir.is_dir() {
        return Some(dir);
    }
    let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
    assert!(
        !ci,
        "test vectors not found at {} (set XINLIAN_VECTORS); CI must have them",
        dir.display()
    );
    eprintln!(
        "SKIPPED: test vectors not found at {}; put shared/vectors there or set XINLIAN_VECTORS",
        dir.display()
    );
    None
}
