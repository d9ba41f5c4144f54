//! Links every SiON process as a static, non-position-independent executable
//! (`ET_EXEC`) at lld's default base, which is what the kernel's loader takes.
fn main() {
    println!("cargo:rustc-link-arg-bins=--no-pie");
    println!("cargo:rerun-if-changed=build.rs");
}
