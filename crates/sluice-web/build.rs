//! Rebuilds the crate whenever anything under `web/dist` changes (files added or removed
//! included), so the embedded assets are always the committed ones.

fn main() {
    println!("cargo:rerun-if-changed=../../web/dist");
}
