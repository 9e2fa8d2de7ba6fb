//! Records the target triple so `hearth --version` can say which build it is.
fn main() {
    let target = std::env::var("TARGET").unwrap_or_else(|_| "unknown".into());
    println!("cargo:rustc-env=BUILD_TARGET_TRIPLE={target}");
    println!("cargo:rerun-if-changed=build.rs");
}
