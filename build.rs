//! Compiles the eBPF programs in `ebpf/` with clang into `$OUT_DIR/goprobe.bpf.o`,
//! which `src/bpf/` embeds.
//!
//! No vmlinux.h: the programs only use UAPI types (`linux/bpf.h`) and the
//! uprobe context, whose amd64 layout (`struct pt_regs`) is user-space ABI and
//! spelled out in `ebpf/goprobe.h`. They read no kernel structs, so they need
//! no CO-RE relocations, and the build does not depend on the build
//! machine's kernel BTF.

use std::env;
use std::path::PathBuf;
use std::process::Command;

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let src = "ebpf/goprobe.bpf.c";
    for f in [src, "ebpf/goprobe.h"] {
        println!("cargo:rerun-if-changed={f}");
    }
    println!("cargo:rerun-if-env-changed=GOPROBE_CLANG");
    let clang = env::var("GOPROBE_CLANG").unwrap_or_else(|_| "clang-14".to_owned());
    let obj = out.join("goprobe.bpf.o");
    let status = Command::new(&clang)
        .args([
            "-target",
            "bpf",
            "-O2",
            "-g",
            "-Wall",
            "-Werror",
            "-D__TARGET_ARCH_x86",
        ])
        // asm/types.h, pulled in by linux/bpf.h, lives in the multiarch directory.
        .args(["-I", "/usr/include/x86_64-linux-gnu", "-I", "ebpf"])
        .arg("-c")
        .arg(src)
        .arg("-o")
        .arg(&obj)
        .status();
    match status {
        Ok(s) if s.success() => {}
        Ok(s) => panic!("{clang} failed to compile {src} ({s}); run scripts/setup.sh"),
        Err(e) => panic!(
            "cannot run {clang} ({e}): install clang-14 (scripts/setup.sh) or set GOPROBE_CLANG"
        ),
    }
}
