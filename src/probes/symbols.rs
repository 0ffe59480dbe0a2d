//! Naming what eBPF programs report by runtime address: Go types (panic
//! values, database connectors and errors), from the traced binary's type
//! descriptors, and user stacks (CPU samples, panics), from its pclntab;
//! both shifted by each process's load address and cached, because a
//! process reports the same few types and pcs over and over.

use std::collections::HashMap;

use super::stacks::{Captured, FrameCache, PhysFrame};
use crate::gobin::GoBinary;
use crate::gobin::types::GoType;

pub struct Symbols {
    binary: Option<GoBinary>,
    biases: HashMap<u32, Option<u64>>,
    /// Named types by link-time address.
    types: HashMap<u64, Option<GoType>>,
    /// Whether the type at a link-time address wraps an interface at offset 0.
    wrappers: HashMap<(u64, String), bool>,
    frames: FrameCache,
    /// Per process: its mappings outside the binary (start, end, name), to
    /// name pcs in the vDSO or a shared library.
    mappings: HashMap<u32, Vec<(u64, u64, String)>>,
}

impl Symbols {
    /// `binary`: the target, opened (`None`: types are never named).
    pub fn new(binary: Option<GoBinary>) -> Symbols {
        Symbols {
            binary,
            biases: HashMap::new(),
            types: HashMap::new(),
            wrappers: HashMap::new(),
            frames: FrameCache::default(),
            mappings: HashMap::new(),
        }
    }

    /// A user stack of process `pid`, symbolized (see [`super::stacks`]).
    /// A process whose load address cannot be told gets its pcs as
    /// captured, unnamed.
    pub fn stack(&mut self, pid: u32, cap: &Captured<'_>) -> Vec<PhysFrame> {
        let bias = self.bias(pid);
        let mappings = &mut self.mappings;
        let mut outside = |pc: u64| mapping_name(mappings, pid, pc);
        match bias {
            Some(b) => self
                .frames
                .stack(self.binary.as_ref(), b, cap, &mut outside),
            None => self.frames.stack(None, 0, cap, &mut outside),
        }
    }

    /// The frame at return address `ret` of process `pid`.
    pub fn return_frame(&mut self, pid: u32, ret: u64) -> Option<PhysFrame> {
        let bias = self.bias(pid)?;
        let mappings = &mut self.mappings;
        let mut outside = |pc: u64| mapping_name(mappings, pid, pc);
        Some(
            self.frames
                .return_frame(self.binary.as_ref(), bias, ret, &mut outside),
        )
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

/// The name of the mapping of `pid` that holds `pc` (`[vdso]`, a shared
/// library's file name), `?` when none does. The maps file is read again
/// when a pc is in none of the mappings known (a library loaded later).
fn mapping_name(cache: &mut HashMap<u32, Vec<(u64, u64, String)>>, pid: u32, pc: u64) -> String {
    let find = |maps: &[(u64, u64, String)]| {
        maps.iter()
            .find(|(lo, hi, _)| (*lo..*hi).contains(&pc))
            .map(|(_, _, n)| n.clone())
    };
    if let Some(name) = cache.get(&pid).and_then(|m| find(m)) {
        return name;
    }
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps"))
        .map(|t| parse_maps(&t))
        .unwrap_or_default();
    let name = find(&maps);
    cache.insert(pid, maps);
    name.unwrap_or_else(|| "?".to_owned())
}

/// Executable mappings of a maps file: (start, end, short name).
fn parse_maps(text: &str) -> Vec<(u64, u64, String)> {
    text.lines()
        .filter_map(|line| {
            let mut cols = line.split_whitespace();
            let (lo, hi) = cols.next()?.split_once('-')?;
            let perms = cols.next()?;
            if !perms.contains('x') {
                return None;
            }
            let path = cols.nth(3).unwrap_or("");
            let name = path.rsplit('/').next().filter(|n| !n.is_empty())?;
            Some((
                u64::from_str_radix(lo, 16).ok()?,
                u64::from_str_radix(hi, 16).ok()?,
                name.to_owned(),
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn executable_mappings_by_short_name() {
        let maps = "00400000-00600000 r-xp 00000000 fe:01 123 /srv/app\n\
7f0000000000-7f0000001000 r--p 00000000 fe:01 9 /usr/lib/libc.so.6\n\
7f0000001000-7f0000002000 r-xp 00001000 fe:01 9 /usr/lib/libc.so.6\n\
7ffd00000000-7ffd00002000 r-xp 00000000 00:00 0 [vdso]\n\
7ffe00000000-7ffe00002000 rw-p 00000000 00:00 0 [stack]\n";
        let m = parse_maps(maps);
        assert_eq!(m.len(), 3);
        assert_eq!(
            m[1],
            (0x7f0000001000, 0x7f0000002000, "libc.so.6".to_owned())
        );
        assert_eq!(m[2].2, "[vdso]");
    }
}
