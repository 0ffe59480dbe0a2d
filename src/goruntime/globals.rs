//! Where the runtime's globals live in a binary: `runtime.allgs`,
//! `runtime.mbuckets`, `runtime.mProfCycle`, `runtime.MemProfileRate`,
//! `runtime.gStatusStrings`, `runtime.waitReasonStrings`.
//!
//! From the symbol table when the binary has one; else from the machine code
//! of the runtime function that references each (found by name in pclntab,
//! which stripped binaries keep), decoded with iced-x86. Each recognizer
//! names the one reference that identifies its global; a function with no
//! such reference, or with several, is an error, never a guess. The callers
//! then validate every address against the process's memory
//! ([`crate::goruntime`]'s readers): lengths within capacities, pointers
//! inside its mappings, records of the right type.
//!
//! What each recognizer relies on (the same from Go 1.19 through 1.27, read
//! in `go tool objdump` of the corpus):
//! * `runtime.allgadd` (`allgs = append(allgs, gp)`) reads and writes the
//!   three words of the `allgs` slice header: the only address `A` referenced
//!   together with `A+8` and `A+16`;
//! * `runtime.mProf_FlushLocked` loads `mbuckets` (a pointer) and no other
//!   global;
//! * `runtime.mProf_Free` reads the 32-bit `mProfCycle` and no other 32-bit global;
//! * `runtime.profilealloc` loads `MemProfileRate` and compares it with 1
//!   (`nextSample`, inlined); the other global it loads is `mcache0`;
//! * `runtime.waitReason.String` bounds-checks its index against the length
//!   of `waitReasonStrings`, then takes the array's address;
//! * `runtime.goroutineheader` takes the addresses of `gStatusStrings` and
//!   `waitReasonStrings` (told apart by their contents).

use iced_x86::{Decoder, DecoderOptions, Instruction, Mnemonic, OpKind, Register};

use crate::gobin::GoBinary;

/// A global the readers need.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub enum Global {
    Allgs,
    Mbuckets,
    MProfCycle,
    MemProfileRate,
    GStatusStrings,
    WaitReasonStrings,
}

impl Global {
    pub fn symbol(self) -> &'static str {
        match self {
            Global::Allgs => "runtime.allgs",
            Global::Mbuckets => "runtime.mbuckets",
            Global::MProfCycle => "runtime.mProfCycle",
            Global::MemProfileRate => "runtime.MemProfileRate",
            Global::GStatusStrings => "runtime.gStatusStrings",
            Global::WaitReasonStrings => "runtime.waitReasonStrings",
        }
    }

    /// The runtime function whose code identifies the global.
    pub fn function(self) -> &'static str {
        match self {
            Global::Allgs => "runtime.allgadd",
            Global::Mbuckets => "runtime.mProf_FlushLocked",
            Global::MProfCycle => "runtime.mProf_Free",
            Global::MemProfileRate => "runtime.profilealloc",
            Global::GStatusStrings => "runtime.goroutineheader",
            Global::WaitReasonStrings => "runtime.waitReason.String",
        }
    }
}

/// How a global was found.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Found {
    /// The symbol table.
    Symbol,
    /// The machine code of the named function.
    Code(&'static str),
}

/// Why a global could not be found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GlobalError {
    #[error("{global} not found: no symbol table, and {why}")]
    NotFound { global: &'static str, why: String },
}

/// Candidate link-time addresses of a global (several only when the code
/// alone cannot tell them apart: the caller validates each against memory).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidates {
    pub global: Global,
    pub addrs: Vec<u64>,
    pub found: Found,
}

/// One RIP-relative memory operand of a decoded function.
#[derive(Debug, Clone, Copy)]
struct MemRef {
    /// Index of the instruction in the function.
    index: usize,
    addr: u64,
    /// Bytes accessed (0 for LEA).
    size: usize,
    lea: bool,
    /// The register loaded (`MOV reg, [rip+x]`).
    loaded: Option<Register>,
}

fn decode(code: &[u8], ip: u64) -> Vec<Instruction> {
    let mut d = Decoder::with_ip(64, code, ip, DecoderOptions::NONE);
    let mut out = Vec::new();
    while d.can_decode() {
        let i = d.decode();
        if i.is_invalid() {
            // Padding (INT3) or data after the last instruction.
            break;
        }
        out.push(i);
    }
    out
}

fn mem_refs(code: &[Instruction]) -> Vec<MemRef> {
    code.iter()
        .enumerate()
        .filter(|(_, i)| i.is_ip_rel_memory_operand())
        .map(|(index, i)| {
            let lea = i.mnemonic() == Mnemonic::Lea;
            let loaded = (matches!(i.mnemonic(), Mnemonic::Mov | Mnemonic::Movzx)
                && i.op_count() == 2
                && i.op0_kind() == OpKind::Register
                && i.op1_kind() == OpKind::Memory)
                .then(|| i.op0_register());
            MemRef {
                index,
                addr: i.ip_rel_memory_address(),
                size: if lea { 0 } else { i.memory_size().size() },
                lea,
                loaded,
            }
        })
        .collect()
}

/// Whether instruction `i` compares `reg` (any width of it) with `imm`.
fn compares_with(i: &Instruction, reg: Register, imm: u64) -> bool {
    i.mnemonic() == Mnemonic::Cmp
        && i.op_count() == 2
        && i.op0_kind() == OpKind::Register
        && i.op0_register().full_register() == reg.full_register()
        && matches!(
            i.op1_kind(),
            OpKind::Immediate8
                | OpKind::Immediate8to32
                | OpKind::Immediate8to64
                | OpKind::Immediate32
                | OpKind::Immediate32to64
        )
        && i.immediate(1) == imm
}

fn unique(mut addrs: Vec<u64>) -> Vec<u64> {
    addrs.sort_unstable();
    addrs.dedup();
    addrs
}

/// The recognizer of each global over its function's code.
fn recognize(global: Global, code: &[Instruction]) -> Result<Vec<u64>, String> {
    let refs = mem_refs(code);
    let addrs = match global {
        Global::Allgs => {
            let seen: Vec<u64> = refs.iter().map(|r| r.addr).collect();
            unique(
                seen.iter()
                    .copied()
                    .filter(|&a| {
                        let has = |k: u64| a.checked_add(k).is_some_and(|b| seen.contains(&b));
                        has(8) && has(16)
                    })
                    .collect(),
            )
        }
        Global::Mbuckets => unique(
            refs.iter()
                .filter(|r| r.size == 8 && r.loaded.is_some())
                .map(|r| r.addr)
                .collect(),
        ),
        Global::MProfCycle => unique(
            refs.iter()
                .filter(|r| r.size == 4 && !r.lea)
                .map(|r| r.addr)
                .collect(),
        ),
        Global::MemProfileRate => unique(
            refs.iter()
                .filter(|r| r.size == 8)
                .filter(|r| {
                    let Some(reg) = r.loaded else { return false };
                    code.iter()
                        .skip(r.index + 1)
                        .take(8)
                        .any(|i| compares_with(i, reg, 1))
                })
                .map(|r| r.addr)
                .collect(),
        ),
        Global::WaitReasonStrings | Global::GStatusStrings => {
            unique(refs.iter().filter(|r| r.lea).map(|r| r.addr).collect())
        }
    };
    let single = matches!(
        global,
        Global::Allgs | Global::Mbuckets | Global::MProfCycle | Global::MemProfileRate
    );
    match addrs.len() {
        0 => Err("its reference is not in the code".into()),
        1 => Ok(addrs),
        n if single => Err(format!("{n} references fit, not one")),
        _ => Ok(addrs),
    }
}

/// The length `waitReason.String` checks its index against (`CMP AL, N`
/// before the array's LEA), if the code has one.
pub fn array_bound_before(bin: &GoBinary, function: &str) -> Option<u64> {
    let code = function_code(bin, function).ok()?;
    let lea = code
        .iter()
        .position(|i| i.mnemonic() == Mnemonic::Lea && i.is_ip_rel_memory_operand())?;
    code[..lea].iter().rev().find_map(|i| {
        (i.mnemonic() == Mnemonic::Cmp
            && i.op_count() == 2
            && i.op0_kind() == OpKind::Register
            && matches!(
                i.op1_kind(),
                OpKind::Immediate8 | OpKind::Immediate8to32 | OpKind::Immediate32
            ))
        .then(|| i.immediate(1))
    })
}

fn function_code(bin: &GoBinary, name: &str) -> Result<Vec<Instruction>, String> {
    let f = bin
        .function(name)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("the binary has no function {name}"))?;
    let start = usize::try_from(f.offset).map_err(|_| "function offset".to_string())?;
    let len = usize::try_from(f.size).map_err(|_| "function size".to_string())?;
    let bytes = bin
        .data()
        .get(start..start.saturating_add(len))
        .ok_or_else(|| format!("{name} is outside the file"))?;
    Ok(decode(bytes, f.address))
}

/// Candidate link-time addresses of `global` in `bin`.
pub fn locate(bin: &GoBinary, global: Global) -> Result<Candidates, GlobalError> {
    if let Some(addr) = bin.symbol(global.symbol()) {
        return Ok(Candidates {
            global,
            addrs: vec![addr],
            found: Found::Symbol,
        });
    }
    let fail = |why: String| GlobalError::NotFound {
        global: global.symbol(),
        why,
    };
    if !matches!(bin.elf().arch, crate::gobin::Arch::Amd64) {
        return Err(fail(format!(
            "machine code of {} binaries is not decoded (amd64 only)",
            String::from(bin.elf().arch.clone())
        )));
    }
    let function = global.function();
    let code = function_code(bin, function).map_err(&fail)?;
    let addrs = recognize(global, &code).map_err(|why| fail(format!("in {function}: {why}")))?;
    Ok(Candidates {
        global,
        addrs,
        found: Found::Code(function),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn asm(bytes: &[u8], ip: u64) -> Vec<Instruction> {
        decode(bytes, ip)
    }

    #[test]
    fn slice_header_references() {
        // mov rcx,[rip+0x10]; mov rbx,[rip+0x10]; mov rax,[rip+0x10]; lea rax,[rip+0x100]
        // At ip 0x1000 (7-byte insns): targets 0x1017, 0x101e, 0x1025 -> not a header.
        let none = [
            0x48, 0x8b, 0x0d, 0x10, 0, 0, 0, 0x48, 0x8b, 0x1d, 0x10, 0, 0, 0, 0x48, 0x8b, 0x05,
            0x10, 0, 0, 0,
        ];
        assert!(recognize(Global::Allgs, &asm(&none, 0x1000)).is_err());
        // Targets A+16, A+8, A with A = 0x2000: disp = A+k - next ip.
        let mut code = Vec::new();
        for (k, next) in [(16u64, 0x1007u64), (8, 0x100e), (0, 0x1015)] {
            let disp = (0x2000 + k - next) as u32;
            code.extend_from_slice(&[0x48, 0x8b, 0x05]);
            code.extend_from_slice(&disp.to_le_bytes());
        }
        assert_eq!(
            recognize(Global::Allgs, &asm(&code, 0x1000)),
            Ok(vec![0x2000])
        );
    }

    #[test]
    fn rate_is_the_load_compared_with_one() {
        // mov rdx,[rip+a]; mov rsi,[rip+b]; cmp rsi,1
        let mut code = Vec::new();
        let d1 = (0x3000u64 - 0x1007) as u32;
        code.extend_from_slice(&[0x48, 0x8b, 0x15]);
        code.extend_from_slice(&d1.to_le_bytes());
        let d2 = (0x3008u64 - 0x100e) as u32;
        code.extend_from_slice(&[0x48, 0x8b, 0x35]);
        code.extend_from_slice(&d2.to_le_bytes());
        code.extend_from_slice(&[0x48, 0x83, 0xfe, 0x01]);
        let got = recognize(Global::MemProfileRate, &asm(&code, 0x1000));
        assert_eq!(got, Ok(vec![0x3008]));
        // Two 8-byte loads: mbuckets is ambiguous.
        assert!(recognize(Global::Mbuckets, &asm(&code, 0x1000)).is_err());
    }
}
