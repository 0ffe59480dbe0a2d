//! Naming the Go types that eBPF programs report by runtime address (panic
//! values, database connectors and errors): the traced binary's type
//! descriptors, shifted by each process's load address, cached because a
//! process reports the same few types over and over.

use std::collections::HashMap;

use crate::gobin::GoBinary;
use crate::gobin::types::GoType;

pub struct Symbols {
    binary: Option<GoBinary>,
    biases: HashMap<u32, Option<u64>>,
    /// Named types by link-time address.
    types: HashMap<u64, Option<GoType>>,
    /// Whether the type at a link-time address wraps an interface at offset 0.
    wrappers: HashMap<(u64, String), bool>,
}

impl Symbols {
    /// `binary`: the target, opened (`None`: types are never named).
    pub fn new(binary: Option<GoBinary>) -> Symbols {
        Symbols {
            binary,
            biases: HashMap::new(),
            types: HashMap::new(),
            wrappers: HashMap::new(),
        }
    }

    /// Load bias of `pid` (runtime address − link-time address); 0 for
    /// position-dependent binaries. `None` when it cannot be told (the
    /// process is gone). Learning it early (at attach time) lets a process
    /// that crashes still get its last events' types named.
    pub fn bias(&mut self, pid: u32) -> Option<u64> {
        let bin = self.binary.as_ref()?;
        if !bin.elf().pie {
            return Some(0);
        }
        *self
            .biases
            .entry(pid)
            .or_insert_with(|| crate::gobin::types::load_bias(pid, bin).ok())
    }

    /// The Go type at runtime address `addr` in process `pid`, named as `%T` prints it.
    pub fn type_name(&mut self, pid: u32, addr: u64) -> Option<GoType> {
        if addr == 0 {
            return None;
        }
        let link = addr.checked_sub(self.bias(pid)?)?;
        let bin = self.binary.as_ref()?;
        self.types
            .entry(link)
            .or_insert_with(|| crate::gobin::types::resolve_type(bin, link).ok())
            .clone()
    }

    /// Whether the type at runtime address `addr` in `pid` is a pointer to a
    /// struct whose first field (offset 0) is the interface `iface` (as `%T`
    /// names it, e.g. `net.Conn`): a wrapper such as go-conntrack's
    /// connection tracker, which Prometheus dials through. Read from the
    /// binary's own descriptors, so stripped binaries answer too.
    pub fn wraps_interface_first(&mut self, pid: u32, addr: u64, iface: &str) -> bool {
        if addr == 0 {
            return false;
        }
        let Some(link) = self.bias(pid).and_then(|b| addr.checked_sub(b)) else {
            return false;
        };
        let Some(bin) = self.binary.as_ref() else {
            return false;
        };
        *self
            .wrappers
            .entry((link, iface.to_string()))
            .or_insert_with(|| {
                let Ok(table) = crate::gobin::types::TypeTable::new(bin) else {
                    return false;
                };
                let first = table
                    .pointer_elem(link)
                    .and_then(|elem| table.struct_fields(elem))
                    .ok()
                    .and_then(|f| f.into_iter().next());
                first.is_some_and(|f| {
                    f.offset == 0
                        && f.kind == crate::gobin::types::Kind::Interface
                        && table.resolve(f.typ).is_ok_and(|t| t.name == iface)
                })
            })
    }

    /// The import path of a named type's package: from the descriptor, else
    /// from the binary's function names.
    pub fn package_path(&self, ty: &GoType) -> Option<String> {
        ty.pkg_path.clone().or_else(|| {
            self.binary
                .as_ref()
                .and_then(|b| crate::gobin::types::package_path_from_functions(b, &ty.name))
        })
    }
}
