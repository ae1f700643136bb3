//! Writes each fuzz target's seeds, generated from the fixture, to
//! `corpus/<target>/seed-<n>` under the directory given (default: `corpus` beside
//! this crate's manifest). Usage: `seeds [DIR]`.

use std::path::PathBuf;

fn main() -> std::io::Result<()> {
    let dir = std::env::args().nth(1).map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("corpus"),
        PathBuf::from,
    );
    for target in xinlian_fuzz::seeds::TARGETS {
        let d = dir.join(target);
        std::fs::create_dir_all(&d)?;
        let seeds = xinlian_fuzz::seeds::seeds(target);
        for (n, s) in seeds.iter().enumerate() {
            std::fs::write(d.join(format!("seed-{n}")), s)?;
        }
        println!("{target}: {} seeds in {}", seeds.len(), d.display());
    }
    Ok(())
}
