//! The catalog's own checks: it parses, its probes are consistent, and its
//! version ranges and hook rules mean what they say.

use super::*;

fn no_modules(_: &str) -> Option<String> {
    None
}

#[test]
fn builtin_json_is_the_toml() {
    // The build script's JSON copy reads back as the TOML does.
    assert_eq!(
        Catalog::builtin().unwrap(),
        &Catalog::parse(CATALOG_TOML).unwrap()
    );
}

#[test]
fn builtin_catalog_parses_and_has_http_probes() {
    let c = Catalog::builtin().unwrap();
    let server = c.probe("http.server").unwrap();
    assert_eq!(server.hooks[0].function, "net/http.serverHandler.ServeHTTP");
    let client = c.probe("http.client").unwrap();
    assert_eq!(client.hooks[0].function, "net/http.(*Transport).roundTrip");
    assert!(c.all_fields().contains(&"runtime.g.goid".to_string()));
}

/// A field is in the offsets table unless every need of it says
/// `table = false`.
#[test]
fn table_fields_leave_out_what_the_catalog_keeps_out() {
    let probe = |name: &str, field: &str, table: &str| {
        format!(
            "[[probe]]\nname = \"{name}\"\nsummary = \"s\"\ngo = \">=1.17\"\narchs = [\"amd64\"]\n\
             family = \"f\"\nrole = \"event\"\n[[probe.hook]]\nfunction = \"main.f\"\n\
             at = [\"entry\"]\nprogram = \"p\"\n[[probe.field]]\nfield = \"{field}\"\n\
             from = \"g\"\n{table}\n"
        )
    };
    let text = [
        probe("a", "runtime.g.goid", ""),
        probe("b", "net.TCPAddr.Port", "table = false"),
        probe("c", "net.TCPAddr.IP", "table = false"),
        probe("d", "net.TCPAddr.IP", ""),
    ]
    .concat();
    let c = Catalog::parse(&text).unwrap();
    assert_eq!(c.all_fields().len(), 3);
    assert_eq!(c.table_fields(), ["runtime.g.goid", "net.TCPAddr.IP"]);
}

#[test]
fn fields_follow_go_version_ranges() {
    let c = Catalog::builtin().unwrap();
    let f = |v: &str| {
        c.fields_for(&Target {
            go_version: v,
            module_version: &no_modules,
        })
    };
    let f121 = f("go1.21.13");
    assert!(
        !f121
            .iter()
            .any(|x| x.contains("Pattern") || x.contains("pattern"))
    );
    let f122 = f("go1.22.10");
    assert!(f122.contains(&"net/http.pattern.str".to_string()));
    assert!(!f122.contains(&"net/http.Request.Pattern".to_string()));
    let f126 = f("go1.26.6");
    assert!(f126.contains(&"net/http.Request.Pattern".to_string()));
    assert!(!f126.contains(&"net/http.Request.pat".to_string()));
}

#[test]
fn present_probes_and_their_wanted_fields() {
    let c = Catalog::builtin().unwrap();
    let t = Target {
        go_version: "go1.23.9",
        module_version: &no_modules,
    };
    // An HTTP server: no database/sql functions.
    let http_only = |f: &str| f.starts_with("net/http.") || f.starts_with("runtime.");
    let names: Vec<&str> = c
        .probes_present(&t, &http_only)
        .iter()
        .map(|p| p.name.as_str())
        .collect();
    assert!(names.contains(&"http.server") && names.contains(&"go.spawn"));
    assert!(!names.contains(&"db.sql"), "{names:?}");
    let with_sql = |f: &str| f == "database/sql.(*DB).queryDC";
    let present = c.probes_present(&t, &with_sql);
    let names: Vec<&str> = present.iter().map(|p| p.name.as_str()).collect();
    // The CPU sampler needs no function: every Go binary has it.
    assert_eq!(names, ["db.sql", "cpu.sample"]);
    let wanted = Catalog::wanted_fields(&present, &t);
    let opt = |name: &str| wanted.iter().find(|w| w.field == name).map(|w| w.optional);
    assert_eq!(opt("database/sql.Stmt.query"), Some(false));
    assert_eq!(opt("database/sql.dsnConnector.dsn"), Some(true));
    assert_eq!(opt("net/http.Request.Method"), None);
    // Optional in http.server, and no other selected probe needs it.
    let server = c.probe("http.server").unwrap();
    let wanted = Catalog::wanted_fields(&[server], &t);
    assert!(
        wanted
            .iter()
            .any(|w| w.field == "runtime.hmap.B" && w.optional)
    );
    assert!(
        !wanted
            .iter()
            .any(|w| w.field.starts_with("internal/runtime/maps"))
    );
    assert!(
        wanted
            .iter()
            .any(|w| w.field == "net/http.Request.Method" && !w.optional)
    );
}

#[test]
fn registers_by_word() {
    assert_eq!(register("amd64", 3), Some("rdi"));
    assert_eq!(register("arm64", 3), Some("x3"));
    assert_eq!(register("amd64", 9), None);
    assert_eq!(register("386", 0), None);
    assert_eq!(g_register("amd64"), Some("r14"));
}

#[test]
fn module_ranges_use_the_compiled_version() {
    let text = r#"
[[probe]]
name = "grpc.server"
summary = "s"
go = ">=1.17"
archs = ["amd64"]
family = "grpc_server"
role = "server"
  [[probe.hook]]
  function = "google.golang.org/grpc.(*Server).handleStream"
  at = ["entry"]
  program = "grpc_server"
  [[probe.field]]
  field = "google.golang.org/grpc/internal/transport.Stream.method"
  from = "stream"
  module = "google.golang.org/grpc"
  version = ">=1.40.0"
"#;
    let c = Catalog::parse(text).unwrap();
    let new = |m: &str| (m == "google.golang.org/grpc").then(|| "v1.60.1".to_string());
    let old = |m: &str| (m == "google.golang.org/grpc").then(|| "v1.30.0".to_string());
    assert_eq!(
        c.fields_for(&Target {
            go_version: "go1.22.1",
            module_version: &new
        })
        .len(),
        1
    );
    assert_eq!(
        c.fields_for(&Target {
            go_version: "go1.22.1",
            module_version: &old
        })
        .len(),
        0
    );
    assert!(
        Catalog::parse(
            "[[probe]]\nname='x'\nsummary=''\ngo='~1'\narchs=[]\nfamily='x'\nrole='client'\nhook=[]"
        )
        .is_err()
    );
    assert!(
        Catalog::parse("[[probe]]\nname='x'\nsummary=''\ngo='>=1'\narchs=[]\nfamily='X-y'\nrole='client'\nhook=[]").is_err()
    );
}
