//! Compiles goprobe's eBPF programs with clang: one object per probe family
//! named in `src/catalog.toml` (`ebpf/probes/<family>.bpf.c` ->
//! `$OUT_DIR/<family>.bpf.o`, embedded by `src/probes/<family>.rs`), plus
//! `ebpf/baseline.bpf.c` (the do-nothing program of `attach --baseline-empty`)
//! and the test-only `ebpf/test/broken.bpf.c` (see there).
//!
//! Each family's field offsets are an array indexed in catalog order: for
//! each family this writes `$OUT_DIR/ebpf/<family>/fields.h` with one
//! `#define GP_F_<Type>_<field> <index>` per field its probes name, each
//! once, in the order the catalog lists them. `Catalog::family_fields` gives
//! the same order at run time (a unit test compares the two).
//!
//! No vmlinux.h: the programs only use UAPI types (`linux/bpf.h`) and the
//! uprobe context, whose amd64 layout (`struct pt_regs`) is user-space ABI and
//! spelled out in `ebpf/lib/abi.h`. They read no kernel structs, so they need
//! no CO-RE relocations, and the build does not depend on the build
//! machine's kernel BTF.

use std::env;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Slots in a family's offset array (`GP_OFF_MAX` in `ebpf/lib/abi.h`).
const OFF_MAX: usize = 32;

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    println!("cargo:rerun-if-changed=src/catalog.toml");
    println!("cargo:rerun-if-changed=ebpf");
    println!("cargo:rerun-if-env-changed=GOPROBE_CLANG");
    let clang = env::var("GOPROBE_CLANG").unwrap_or_else(|_| "clang-14".to_owned());
    let catalog = std::fs::read_to_string("src/catalog.toml").expect("reading src/catalog.toml");
    // The catalog as JSON too: goprobe parses it on every run, and JSON
    // parses several times faster than TOML (`Catalog::builtin`).
    let table: toml::Table = catalog.parse().expect("src/catalog.toml is not valid TOML");
    let json = serde_json::to_string(&table).expect("src/catalog.toml as JSON");
    std::fs::write(out.join("catalog.json"), json).expect("writing catalog.json");
    table_parts(&out);
    let families = families(&catalog);
    for (family, fields) in &families {
        let dir = out.join("ebpf").join(family);
        std::fs::create_dir_all(&dir).expect("creating the generated header directory");
        std::fs::write(dir.join("fields.h"), fields_header(family, fields))
            .expect("writing fields.h");
        let src = format!("ebpf/probes/{family}.bpf.c");
        if !Path::new(&src).exists() {
            panic!("src/catalog.toml names family {family}, but {src} does not exist");
        }
        compile(&clang, &src, &[&dir], &out.join(format!("{family}.bpf.o")));
    }
    compile(
        &clang,
        "ebpf/baseline.bpf.c",
        &[],
        &out.join("baseline.bpf.o"),
    );
    compile(
        &clang,
        "ebpf/test/broken.bpf.c",
        &[Path::new("ebpf/test")],
        &out.join("test_broken.bpf.o"),
    );
}

/// The offsets table (`src/offsets/table.json`) cut into the parts one
/// binary uses, as `$OUT_DIR/table_parts.rs`: each standard-library layout
/// group's `verified` list and each GOARCH's layouts, each module version's
/// layouts per GOARCH, every part its own JSON text, so that a run parses
/// only its binary's parts (`src/offsets/table/part.rs`). A table that does
/// not have the expected shape is not cut (`SPLIT` false): goprobe then
/// parses it whole, and reports what is wrong with it as before.
fn table_parts(out: &Path) {
    println!("cargo:rerun-if-changed=src/offsets/table.json");
    let text =
        std::fs::read_to_string("src/offsets/table.json").expect("reading src/offsets/table.json");
    let code = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| table_parts_code(&v))
        .unwrap_or_else(|| {
            "pub const SPLIT: bool = false;\npub const FORMAT: u64 = 0;\n\
             pub const STDLIB: &[(&str, &str, &[(&str, &str)])] = &[];\n\
             pub const MODULES: &[(&str, &str, &[(&str, &str)])] = &[];\n"
                .to_owned()
        });
    std::fs::write(out.join("table_parts.rs"), code).expect("writing table_parts.rs");
}

/// The Rust source of [`table_parts`], `None` when the table is not an
/// object of `format`, `stdlib` (minor -> `verified`, `archs`) and
/// `modules` (path -> version -> GOARCH -> layouts).
fn table_parts_code(v: &serde_json::Value) -> Option<String> {
    let top = v.as_object()?;
    if top
        .keys()
        .any(|k| !["format", "stdlib", "modules"].contains(&k.as_str()))
    {
        return None;
    }
    let json = |v: &serde_json::Value| serde_json::to_string(v).expect("JSON values serialize");
    let archs = |v: &serde_json::Value| -> Option<String> {
        let mut s = String::from("&[");
        for (arch, layouts) in v.as_object()? {
            let _ = write!(s, "({arch:?}, {:?}), ", json(layouts));
        }
        s.push(']');
        Some(s)
    };
    let mut code = String::from("pub const SPLIT: bool = true;\n");
    let _ = writeln!(
        code,
        "pub const FORMAT: u64 = {};",
        top.get("format")?.as_u64()?
    );
    code.push_str("pub const STDLIB: &[(&str, &str, &[(&str, &str)])] = &[\n");
    let empty = serde_json::Map::new();
    let stdlib = match top.get("stdlib") {
        Some(s) => s.as_object()?,
        None => &empty,
    };
    for (minor, m) in stdlib {
        let m = m.as_object()?;
        if m.keys().any(|k| k != "verified" && k != "archs") {
            return None;
        }
        let verified = json(m.get("verified")?);
        let _ = writeln!(
            code,
            "    ({minor:?}, {verified:?}, {}),",
            archs(m.get("archs")?)?
        );
    }
    code.push_str("];\npub const MODULES: &[(&str, &str, &[(&str, &str)])] = &[\n");
    let modules = match top.get("modules") {
        Some(m) => m.as_object()?,
        None => &empty,
    };
    for (path, versions) in modules {
        for (version, by_arch) in versions.as_object()? {
            let _ = writeln!(code, "    ({path:?}, {version:?}, {}),", archs(by_arch)?);
        }
    }
    code.push_str("];\n");
    Some(code)
}

/// Each family the catalog names, in catalog order, with the fields its
/// probes name (each once, in catalog order).
fn families(catalog: &str) -> Vec<(String, Vec<String>)> {
    let table: toml::Table = catalog.parse().expect("src/catalog.toml is not valid TOML");
    let probes = table
        .get("probe")
        .and_then(toml::Value::as_array)
        .expect("src/catalog.toml has no [[probe]]");
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    for p in probes {
        let name = p.get("name").and_then(toml::Value::as_str).unwrap_or("?");
        let family = p
            .get("family")
            .and_then(toml::Value::as_str)
            .unwrap_or_else(|| panic!("catalog probe {name} names no family"))
            .to_owned();
        let i = match out.iter().position(|(f, _)| *f == family) {
            Some(i) => i,
            None => {
                out.push((family, Vec::new()));
                out.len() - 1
            }
        };
        let fields = p.get("field").and_then(toml::Value::as_array);
        for f in fields.into_iter().flatten() {
            let field = f
                .get("field")
                .and_then(toml::Value::as_str)
                .unwrap_or_else(|| panic!("catalog probe {name}: a field without a name"));
            if !out[i].1.iter().any(|x| x == field) {
                out[i].1.push(field.to_owned());
            }
        }
    }
    out
}

/// The C name of `PKG.Type.field`: `GP_F_<Type>_<field>`.
fn macro_name(field: &str) -> String {
    let (ty, name) = field
        .rsplit_once('.')
        .and_then(|(rest, name)| Some((rest.rsplit_once('.')?.1, name)))
        .unwrap_or_else(|| panic!("catalog field {field:?} is not PKG.Type.field"));
    let ident =
        |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    assert!(
        ident(ty) && ident(name),
        "catalog field {field:?}: not a C identifier"
    );
    format!("GP_F_{ty}_{name}")
}

/// `GP_F_<package path>_<Type>_<field>`, every character of the package
/// path that is not a C identifier's as `_`: `golang.org/x/net/http2.responseWriter.rws`
/// is `GP_F_golang_org_x_net_http2_responseWriter_rws`.
fn qualified_macro_name(field: &str) -> String {
    let short = macro_name(field);
    let (pkg_and_type, _) = field.rsplit_once('.').expect("checked by macro_name");
    let (pkg, _) = pkg_and_type
        .rsplit_once('.')
        .expect("checked by macro_name");
    let pkg: String = pkg
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!("GP_F_{pkg}_{}", short.trim_start_matches("GP_F_"))
}

fn fields_header(family: &str, fields: &[String]) -> String {
    assert!(
        fields.len() <= OFF_MAX,
        "family {family} names {} fields; its offset array holds {OFF_MAX} (GP_OFF_MAX)",
        fields.len()
    );
    let mut h = format!(
        "/* Generated by build.rs from src/catalog.toml: the {family} family's\n \
         * field offsets, indexes into gp_config.off in catalog order. */\n\
         #ifndef GP_FIELDS_H\n#define GP_FIELDS_H\n"
    );
    let mut names: Vec<String> = Vec::new();
    for (i, f) in fields.iter().enumerate() {
        // Two packages may have a type of the same name (net/http's
        // internal http2 and golang.org/x/net/http2 both have a
        // responseWriter): the later field in catalog order is named with
        // its package too.
        let mut name = macro_name(f);
        if names.contains(&name) {
            name = qualified_macro_name(f);
        }
        assert!(
            !names.contains(&name),
            "family {family}: two fields map to {name}; rename one in build.rs's macro_name"
        );
        let _ = writeln!(h, "#define {name} {i} /* {f} */");
        names.push(name);
    }
    let _ = writeln!(h, "#define GP_F_COUNT {}\n#endif", fields.len());
    h
}

fn compile(clang: &str, src: &str, includes: &[&Path], obj: &Path) {
    let mut cmd = Command::new(clang);
    cmd.args([
        "-target",
        "bpf",
        "-O2",
        "-g",
        "-Wall",
        "-Werror",
        "-D__TARGET_ARCH_x86",
    ])
    // asm/types.h, pulled in by linux/bpf.h, lives in the multiarch directory.
    .args(["-I", "/usr/include/x86_64-linux-gnu", "-I", "ebpf/lib"]);
    for dir in includes {
        cmd.arg("-I").arg(dir);
    }
    let status = cmd.arg("-c").arg(src).arg("-o").arg(obj).status();
    match status {
        Ok(s) if s.success() => {}
        Ok(s) => panic!("{clang} failed to compile {src} ({s}); run scripts/setup.sh"),
        Err(e) => panic!(
            "cannot run {clang} ({e}): install clang-14 (scripts/setup.sh) or set GOPROBE_CLANG"
        ),
    }
}
