//! Where to put a Go function's uprobes (amd64): the entry point after the
//! stack-growth check, and every RET instruction, found by decoding the
//! function body with iced-x86.
//!
//! Why not the first instruction: a Go function whose goroutine stack is
//! too small runs `CMP SP-ish, g.stackguard0(R14); JBE morestack`, calls
//! `runtime.morestack`, which copies the stack and jumps back to the
//! function's first instruction. A probe there fires twice for one call. The
//! instruction right after that conditional jump runs exactly once per call
//! and the argument registers are still untouched there.
//!
//! Why every RET and no uretprobe: a uretprobe replaces the return address
//! on the goroutine stack, and Go moves goroutine stacks; the program then
//! crashes. A plain uprobe on each RET instruction sees every return.

use iced_x86::{Decoder, DecoderOptions, FlowControl, Instruction, Mnemonic, OpKind, Register};

/// Probe locations of one function, as offsets from its entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbePoints {
    /// Offset of the entry probe (0 when the function has no stack check).
    pub entry: u64,
    /// Offsets of every RET instruction.
    pub rets: Vec<u64>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RetsError {
    #[error("function at {0:#x} has no RET instruction (it never returns normally)")]
    NoRet(u64),
    #[error("function at {0:#x} has an empty body")]
    Empty(u64),
}

/// How many instructions from the start the stack check may sit at.
const PROLOGUE_WINDOW: usize = 12;

/// Decode `code` (the function's bytes, starting at its entry, virtual
/// address `vaddr`) and find its probe points.
pub fn probe_points(code: &[u8], vaddr: u64) -> Result<ProbePoints, RetsError> {
    if code.is_empty() {
        return Err(RetsError::Empty(vaddr));
    }
    let mut decoder = Decoder::with_ip(64, code, vaddr, DecoderOptions::NONE);
    let mut insns: Vec<Instruction> = Vec::new();
    let mut instr = Instruction::default();
    while decoder.can_decode() {
        decoder.decode_out(&mut instr);
        insns.push(instr);
    }
    let entry = stack_check_end(&insns).map_or(0, |ip| ip - vaddr);
    let rets: Vec<u64> = insns
        .iter()
        .filter(|i| !i.is_invalid() && matches!(i.mnemonic(), Mnemonic::Ret))
        .map(|i| i.ip() - vaddr)
        .collect();
    if rets.is_empty() {
        return Err(RetsError::NoRet(vaddr));
    }
    Ok(ProbePoints { entry, rets })
}

/// The address of the instruction following the stack-growth check's
/// conditional jump: a CMP that reads memory based on R14 (the g register,
/// `g.stackguard0`), followed by a conditional branch.
fn stack_check_end(insns: &[Instruction]) -> Option<u64> {
    let window = insns.get(..PROLOGUE_WINDOW.min(insns.len()))?;
    for (i, insn) in window.iter().enumerate() {
        let reads_g = insn.mnemonic() == Mnemonic::Cmp
            && (0..insn.op_count()).any(|op| insn.op_kind(op) == OpKind::Memory)
            && insn.memory_base() == Register::R14;
        if !reads_g {
            continue;
        }
        let jump = insns.get(i + 1)?;
        if jump.flow_control() == FlowControl::ConditionalBranch {
            return insns.get(i + 2).map(|next| next.ip());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// net/http.serverHandler.ServeHTTP's start as Go 1.19 compiles it, with
    /// the morestack block replaced by a short tail: LEAQ -0x28(SP),R12;
    /// CMPQ 0x10(R14),R12; JBE +0x10; SUBQ $0xa8,SP; ...; RET; CALL; JMP.
    const SERVE_HTTP: &[u8] = &[
        0x4c, 0x8d, 0x64, 0x24, 0xd8, // lea r12,[rsp-0x28]
        0x4d, 0x3b, 0x66, 0x10, // cmp r12,[r14+0x10]
        0x76, 0x0d, // jbe +0x0d (to the morestack call)
        0x48, 0x81, 0xec, 0xa8, 0x00, 0x00, 0x00, // sub rsp,0xa8
        0x48, 0x81, 0xc4, 0xa8, 0x00, 0x00, 0x00, // add rsp,0xa8
        0xc3, // ret
        0xe8, 0x00, 0x00, 0x00, 0x00, // call morestack
        0xeb, 0xdf, // jmp entry
    ];

    #[test]
    fn entry_after_stack_check_and_ret() {
        let p = probe_points(SERVE_HTTP, 0x625f20).expect("points");
        assert_eq!(
            p,
            ProbePoints {
                entry: 11,
                rets: vec![25]
            }
        );
    }

    #[test]
    fn small_frame_check_and_several_rets() {
        // cmp rsp,[r14+0x10]; jbe +3; ret; nop; ret; int3 padding
        let code = [
            0x49, 0x3b, 0x66, 0x10, 0x76, 0x03, 0xc3, 0x90, 0xc3, 0xcc, 0xcc,
        ];
        let p = probe_points(&code, 0x1000).expect("points");
        assert_eq!(p.entry, 6);
        assert_eq!(p.rets, vec![6, 8]);
    }

    #[test]
    fn nosplit_function_probes_its_first_instruction() {
        let code = [0x48, 0x89, 0xd8, 0xc3]; // mov rax,rbx; ret
        assert_eq!(
            probe_points(&code, 0).expect("points"),
            ProbePoints {
                entry: 0,
                rets: vec![3]
            }
        );
    }

    #[test]
    fn errors() {
        assert_eq!(probe_points(&[], 5), Err(RetsError::Empty(5)));
        assert_eq!(probe_points(&[0x90, 0x90], 5), Err(RetsError::NoRet(5)));
    }
}
