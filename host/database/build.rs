//! `sqlx::migrate!` embeds the migration files at compile time but does not notice a new
//! file in the folder: rebuild whenever `migrations/` changes.

fn main() {
    println!("cargo:rerun-if-changed=../../migrations");
}
