// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

//! Links libdiffcoll. The declarations are not generated here (they are
//! checked in, see check-bindgen.sh); this only tells the linker where the
//! library is: DIFFCOLL_LIB_DIR, else the system's library path.
fn main() {
    println!("cargo:rerun-if-env-changed=DIFFCOLL_LIB_DIR");
    if let Ok(dir) = std::env::var("DIFFCOLL_LIB_DIR") {
        if !dir.is_empty() {
            println!("cargo:rustc-link-search=native={dir}");
        }
    }
    println!("cargo:rustc-link-lib=dylib=diffcoll");
}
