//! Records the target triple so `hearth --version` can say which build it is, and gzips the
//! web app's files once, at build time: the binary carries only the compressed bytes (what
//! every browser asks for), which keeps it small.
use std::io::Write;
use std::path::Path;

fn main() {
    let target = std::env::var("TARGET").unwrap_or_else(|_| "unknown".into());
    println!("cargo:rustc-env=BUILD_TARGET_TRIPLE={target}");
    println!("cargo:rerun-if-changed=build.rs");

    let src = Path::new("src/web/assets");
    let out = Path::new(&std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("assets");
    std::fs::create_dir_all(&out).expect("create OUT_DIR/assets");
    println!("cargo:rerun-if-changed={}", src.display());
    let mut names: Vec<_> = std::fs::read_dir(src)
        .expect("read src/web/assets")
        .map(|e| e.expect("list src/web/assets").file_name())
        .collect();
    names.sort();
    for name in names {
        let path = src.join(&name);
        println!("cargo:rerun-if-changed={}", path.display());
        let body = std::fs::read(&path).expect("read an asset");
        // No file name and a zero mtime in the header: the same input gives the same bytes.
        let mut enc = flate2::GzBuilder::new().write(Vec::new(), flate2::Compression::best());
        enc.write_all(&body).expect("gzip into memory");
        let gz = enc.finish().expect("gzip into memory");
        let mut dest = name.clone();
        dest.push(".gz");
        std::fs::write(out.join(dest), gz).expect("write a gzipped asset");
    }
}
