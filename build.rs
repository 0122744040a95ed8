//! Rebuilds the binary when a migration is added or changed: they are embedded at compile time
//! (`embed_migrations!` in `src/actors/db/pool.rs`), and cargo would not notice a new file.

fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
