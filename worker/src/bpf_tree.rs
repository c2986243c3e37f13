//! The seccomp allow-list as a binary search over the syscall number instead of seccompiler's
//! linear chain of comparisons, with each call's own rules still compiled by seccompiler.
//!
//! Why: when a filter is attached the kernel emulates it once for every syscall number of each
//! architecture to fill its per-syscall action cache (`seccomp_cache_prepare`, Linux 5.11+),
//! under the task's `sighand` lock. With a linear chain every number the list does not hold
//! walks the whole chain (~2 instructions per entry); with a search it walks ~log2(entries).
//! The same holds at run time for every call the cache cannot answer (the argument-filtered
//! `sendto`, `fcntl`, ...): the JIT-compiled filter runs per call.
//!
//! Layout: seccompiler's architecture check, `A = nr`, the search, then one segment per
//! syscall allowed only with some arguments. A segment is exactly what seccompiler emits for
//! that syscall alone (its `JEQ nr` and its rules) followed by the mismatch action; its jumps
//! are relative and stay inside it, so it works unchanged at any position. The search ends in
//! `JEQ nr` on the only number A can still be: then the match action (a call allowed with any
//! arguments) or a `JA` to its segment; otherwise the mismatch action. Only forward jumps exist
//! (classic BPF has no others); the kernel checks the program at load (`seccomp_check_filter`).

use std::collections::BTreeMap;

use seccompiler::{sock_filter, BpfProgram, SeccompAction, SeccompFilter, SeccompRule, TargetArch};

// Classic BPF opcodes (linux/bpf_common.h).
/// BPF_LD | BPF_W | BPF_ABS.
const BPF_LD_W_ABS: u16 = 0x20;
const BPF_JMP_JA: u16 = 0x05;
const BPF_JMP_JEQ_K: u16 = 0x05 | 0x10;
const BPF_JMP_JGE_K: u16 = 0x05 | 0x30;
const BPF_RET_K: u16 = 0x06;
/// `offsetof(struct seccomp_data, nr)`.
const NR_OFFSET: u32 = 0;

/// The filter could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TreeError {
    /// seccompiler refused a rule set.
    #[error("cannot compile a syscall's rules")]
    Backend(#[source] seccompiler::BackendError),
    /// seccompiler's output does not have the expected shape (a new seccompiler version).
    #[error("unexpected seccompiler output: {0}")]
    Shape(&'static str),
    /// A jump would not fit its 8-bit offset, or the program its 16-bit length.
    #[error("filter too large")]
    TooLarge,
}

/// Compile `rules` (syscall number -> the rules under which it is allowed; empty = always):
/// `match_action` when a number's rules hold, `mismatch_action` otherwise.
pub fn compile(
    rules: BTreeMap<i64, Vec<SeccompRule>>,
    mismatch_action: SeccompAction,
    match_action: SeccompAction,
    arch: TargetArch,
) -> Result<BpfProgram, TreeError> {
    let one = |entries: BTreeMap<i64, Vec<SeccompRule>>| -> Result<BpfProgram, TreeError> {
        let f = SeccompFilter::new(entries, mismatch_action.clone(), match_action.clone(), arch)
            .map_err(TreeError::Backend)?;
        BpfProgram::try_from(f).map_err(TreeError::Backend)
    };
    // seccompiler's program for no rules: the architecture check, then the mismatch action.
    let empty = one(BTreeMap::new())?;
    let (kill, prefix) = empty
        .split_last()
        .ok_or(TreeError::Shape("empty program"))?;
    if kill.code != BPF_RET_K {
        return Err(TreeError::Shape("no final return"));
    }
    let allow = stmt(BPF_RET_K, u32::from(match_action.clone()));
    let mut numbers = Vec::with_capacity(rules.len());
    let mut segments = Vec::with_capacity(rules.len());
    for (nr, chain) in rules {
        let nr = u32::try_from(nr).map_err(|_| TreeError::Shape("negative syscall number"))?;
        if chain.is_empty() {
            numbers.push((nr, None));
            continue;
        }
        // For one syscall: prefix, `A = nr`, its segment (ending in the mismatch action).
        let prog = one(BTreeMap::from([(i64::from(nr), chain)]))?;
        let head = prefix.len() + 1;
        if prog.len() <= head + 1
            || prog.get(..prefix.len()) != Some(prefix)
            || prog.get(prefix.len()) != Some(&stmt(BPF_LD_W_ABS, NR_OFFSET))
            || prog.last() != Some(kill)
        {
            return Err(TreeError::Shape("single-syscall program"));
        }
        if prog.get(head) != Some(&jump(BPF_JMP_JEQ_K, nr, 0, 1)) {
            return Err(TreeError::Shape("segment does not start with its number"));
        }
        numbers.push((nr, Some(segments.len())));
        segments.push(prog.get(head..).unwrap_or_default().to_vec());
    }
    let mut out = prefix.to_vec();
    out.push(stmt(BPF_LD_W_ABS, NR_OFFSET));
    // The search, with placeholders for the jumps to the segments (fixed up below).
    let mut to_segment = Vec::new();
    search(&numbers, &mut out, &mut to_segment, &allow, kill)?;
    let mut starts = Vec::with_capacity(segments.len());
    for seg in segments {
        starts.push(out.len());
        out.extend(seg);
    }
    for (at, index) in to_segment {
        let target = *starts.get(index).ok_or(TreeError::Shape("segment index"))?;
        // JA k jumps to at + 1 + k.
        let k = u32::try_from(target - at - 1).map_err(|_| TreeError::TooLarge)?;
        if let Some(insn) = out.get_mut(at) {
            *insn = stmt(BPF_JMP_JA, k);
        }
    }
    // BPF_MAXINSNS (linux/bpf_common.h).
    if out.len() > 4096 {
        return Err(TreeError::TooLarge);
    }
    Ok(out)
}

/// Emit the search over `numbers` (sorted; each with the index of its segment, or `None` when
/// allowed with any arguments): when A is one of them, `allow` or a `JA` to its segment
/// (recorded in `to_segment` as (position, segment index)); otherwise `kill`.
fn search(
    numbers: &[(u32, Option<usize>)],
    out: &mut BpfProgram,
    to_segment: &mut Vec<(usize, usize)>,
    allow: &sock_filter,
    kill: &sock_filter,
) -> Result<(), TreeError> {
    match numbers {
        [] => out.push(kill.clone()),
        [(nr, segment)] => {
            // A == nr ? allow (or JA segment) : kill
            out.push(jump(BPF_JMP_JEQ_K, *nr, 0, 1));
            match segment {
                None => out.push(allow.clone()),
                Some(index) => {
                    to_segment.push((out.len(), *index));
                    out.push(stmt(BPF_JMP_JA, 0));
                }
            }
            out.push(kill.clone());
        }
        _ => {
            let mid = numbers.len() / 2;
            let (low, high) = numbers.split_at(mid);
            let (pivot, _) = *high.first().ok_or(TreeError::Shape("split"))?;
            // A >= pivot ? high half : low half (right after this instruction).
            let at = out.len();
            out.push(jump(BPF_JMP_JGE_K, pivot, 0, 0));
            search(low, out, to_segment, allow, kill)?;
            let skip = u8::try_from(out.len() - at - 1).map_err(|_| TreeError::TooLarge)?;
            if let Some(insn) = out.get_mut(at) {
                insn.jt = skip;
            }
            search(high, out, to_segment, allow, kill)?;
        }
    }
    Ok(())
}

fn stmt(code: u16, k: u32) -> sock_filter {
    sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(code: u16, k: u32, jt: u8, jf: u8) -> sock_filter {
    sock_filter { code, jt, jf, k }
}
