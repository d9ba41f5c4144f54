//! The initial process stack of a new program: argc, argv, envp, the auxiliary
//! vector, and the strings and random bytes they point to, for both ABIs.
//!
//! Layout, from the initial stack pointer up (System V ABI AMD64 supplement
//! §3.4.1 "Initial Stack and Register State", figure 3.9; i386 ABI supplement
//! "Process Stack"; Linux `fs/binfmt_elf.c` `create_elf_tables` and
//! `fs/exec.c`), with words of 8 bytes (x86_64) or 4 bytes (i386):
//!
//! ```text
//! sp ->  argc
//!        argv[0] .. argv[argc-1], NULL
//!        envp[0] .. envp[n-1], NULL
//!        auxv: (type, value) pairs .. (AT_NULL, 0)
//!        padding
//!        16 random bytes (AT_RANDOM)
//!        [copy of the program headers, 8-byte aligned, if requested]
//!        [platform string (AT_PLATFORM), if given]
//!        argv strings, envp strings (each NUL-terminated), execfn string
//!        one zero word
//! top ->
//! ```
//!
//! `sp` is 16-byte aligned, as both ABIs require at process entry.

use alloc::vec::Vec;

use linux_raw_sys::auxvec as at;

use crate::abi::{Abi, PAGE_SIZE};
use crate::elf_load::{LoadPlan, PhdrLocation};
use crate::errno::Errno;

/// Linux's `USER_HZ` on x86, the value of `AT_CLKTCK` (clock ticks per second
/// of `times(2)`).
pub const USER_HZ: u64 = 100;

/// Most bytes of argument and environment strings, plus one pointer for each,
/// accepted (Linux's default limit, a quarter of the 8 MiB stack: 2 MiB,
/// `execve(2)` "Limits on size").
pub const MAX_ARG_BYTES: usize = 2 << 20;

/// Values for the auxiliary vector that do not come from the strings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AuxValues {
    /// `AT_PHDR`: address of the program headers in memory.
    pub phdr: u64,
    /// `AT_PHENT`: size of one program header (32 or 56).
    pub phent: u64,
    /// `AT_PHNUM`: number of program headers.
    pub phnum: u64,
    /// `AT_ENTRY`: the program's entry point.
    pub entry: u64,
    /// `AT_BASE`: where the program interpreter is loaded (0 without one).
    pub base: u64,
    /// `AT_UID`.
    pub uid: u32,
    /// `AT_EUID`.
    pub euid: u32,
    /// `AT_GID`.
    pub gid: u32,
    /// `AT_EGID`.
    pub egid: u32,
    /// `AT_HWCAP`: on x86, `CPUID.1:EDX` of the node's CPU.
    pub hwcap: u64,
    /// `AT_CLKTCK`: [`USER_HZ`].
    pub clktck: u64,
    /// `AT_SECURE`: 0 (no set-uid semantics on SiON).
    pub secure: bool,
}

/// Everything the initial stack holds. Strings must not contain NUL bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StackSpec<'a> {
    /// The program's ABI (word size 4 or 8).
    pub abi: Abi,
    /// One past the highest stack byte; page-aligned, and at most 4 GiB for
    /// i386.
    pub stack_top: u64,
    /// Argument strings (`argv[0]` first).
    pub argv: &'a [&'a [u8]],
    /// Environment strings (`NAME=value`).
    pub envp: &'a [&'a [u8]],
    /// The program's file name as submitted (`AT_EXECFN`).
    pub execfn: &'a [u8],
    /// 16 random bytes (`AT_RANDOM`; libc seeds its stack protector and
    /// pointer guard from them).
    pub random: [u8; 16],
    /// The other auxiliary values.
    pub aux: AuxValues,
    /// If set, these bytes (the program-header table, when
    /// [`PhdrLocation::NotLoaded`]) are copied onto the stack and `AT_PHDR`
    /// points at the copy instead of `aux.phdr`.
    pub phdr_copy: Option<&'a [u8]>,
    /// `AT_PLATFORM` string (Linux gives `"x86_64"` or `"i686"`), or none.
    pub platform: Option<&'a [u8]>,
}

impl<'a> StackSpec<'a> {
    /// A spec for the program of `plan` with uid/gid 0, `hwcap` 0,
    /// `AT_CLKTCK` [`USER_HZ`], no platform string; `aux.phdr` from the plan
    /// (0 if the program headers are not loaded: then set
    /// [`StackSpec::phdr_copy`]).
    pub fn new(
        plan: &LoadPlan,
        stack_top: u64,
        argv: &'a [&'a [u8]],
        envp: &'a [&'a [u8]],
        execfn: &'a [u8],
        random: [u8; 16],
    ) -> StackSpec<'a> {
        StackSpec {
            abi: plan.abi,
            stack_top,
            argv,
            envp,
            execfn,
            random,
            aux: AuxValues {
                phdr: match plan.phdr {
                    PhdrLocation::Loaded(a) => a,
                    PhdrLocation::NotLoaded { .. } => 0,
                },
                phent: u64::from(plan.phent),
                phnum: u64::from(plan.phnum),
                entry: plan.entry,
                base: 0,
                uid: 0,
                euid: 0,
                gid: 0,
                egid: 0,
                hwcap: 0,
                clktck: USER_HZ,
                secure: false,
            },
            phdr_copy: None,
            platform: None,
        }
    }
}

/// The built stack: write `bytes` at `sp` (they end exactly at the stack top),
/// then start the program with the stack pointer at `sp`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InitialStack {
    /// The ABI it was built for.
    pub abi: Abi,
    /// Initial stack pointer: the address of `bytes[0]` and of `argc`;
    /// 16-byte aligned.
    pub sp: u64,
    /// The stack contents from `sp` to the stack top.
    pub bytes: Vec<u8>,
}

/// One auxiliary-vector entry.
pub type AuxEntry = (u64, u64);

impl InitialStack {
    /// One past the last byte: the stack top given to [`build`].
    pub fn top(&self) -> u64 {
        self.sp + self.bytes.len() as u64
    }

    /// Reads the word at address `addr` (inside the stack).
    pub fn word_at(&self, addr: u64) -> Option<u64> {
        let w = self.abi.word_size();
        let off = usize::try_from(addr.checked_sub(self.sp)?).ok()?;
        let b = self.bytes.get(off..off + w)?;
        let mut buf = [0u8; 8];
        buf[..w].copy_from_slice(b);
        Some(u64::from_le_bytes(buf))
    }

    /// The NUL-terminated string at address `addr` (inside the stack), without
    /// its NUL.
    pub fn str_at(&self, addr: u64) -> Option<&[u8]> {
        let off = usize::try_from(addr.checked_sub(self.sp)?).ok()?;
        let rest = self.bytes.get(off..)?;
        let len = rest.iter().position(|&b| b == 0)?;
        Some(&rest[..len])
    }

    /// `argc`.
    pub fn argc(&self) -> u64 {
        self.word_at(self.sp).unwrap_or(0)
    }

    /// Reads a NULL-terminated pointer array starting at word index `first`,
    /// returning the pointers and the index after the NULL.
    fn pointers(&self, first: u64) -> (Vec<u64>, u64) {
        let w = self.abi.word_size() as u64;
        let mut out = Vec::new();
        let mut i = first;
        while let Some(p) = self.word_at(self.sp + i * w) {
            i += 1;
            if p == 0 {
                break;
            }
            out.push(p);
        }
        (out, i)
    }

    /// The `argv` pointers (as written on the stack).
    pub fn argv_pointers(&self) -> Vec<u64> {
        self.pointers(1).0
    }

    /// The `envp` pointers.
    pub fn envp_pointers(&self) -> Vec<u64> {
        let (_, after_argv) = self.pointers(1);
        self.pointers(after_argv).0
    }

    /// The auxiliary vector, up to and excluding `AT_NULL`.
    pub fn auxv(&self) -> Vec<AuxEntry> {
        let w = self.abi.word_size() as u64;
        let (_, after_argv) = self.pointers(1);
        let (_, mut i) = self.pointers(after_argv);
        let mut out = Vec::new();
        while let (Some(t), Some(v)) = (
            self.word_at(self.sp + i * w),
            self.word_at(self.sp + (i + 1) * w),
        ) {
            if t == u64::from(at::AT_NULL) {
                break;
            }
            out.push((t, v));
            i += 2;
        }
        out
    }

    /// The value of auxiliary entry `tag` (`AT_*`), if present.
    pub fn aux(&self, tag: u32) -> Option<u64> {
        self.auxv()
            .into_iter()
            .find(|&(t, _)| t == u64::from(tag))
            .map(|(_, v)| v)
    }
}

/// Builds the initial stack for `spec`.
///
/// Errors: `EINVAL` if the stack top is not page-aligned or too high for the
/// ABI (above 4 GiB for i386), or a string contains a NUL byte; `E2BIG` if the
/// strings exceed [`MAX_ARG_BYTES`] or the stack would not fit below the top.
pub fn build(spec: &StackSpec<'_>) -> Result<InitialStack, Errno> {
    let abi = spec.abi;
    let w = abi.word_size() as u64;
    let top = spec.stack_top;
    if !top.is_multiple_of(PAGE_SIZE) || top == 0 || top - 1 > abi.max_pointer() {
        return Err(Errno::EINVAL);
    }
    let strings = spec
        .argv
        .iter()
        .chain(spec.envp.iter())
        .chain(core::iter::once(&spec.execfn));
    let mut string_bytes = 0usize;
    for s in strings.clone() {
        if s.contains(&0) {
            return Err(Errno::EINVAL);
        }
        string_bytes += s.len() + 1;
    }
    if spec.platform.is_some_and(|p| p.contains(&0)) {
        return Err(Errno::EINVAL);
    }
    // As Linux counts it: the strings plus one pointer per string.
    let pointer_bytes = (spec.argv.len() + spec.envp.len()) * w as usize;
    if string_bytes.saturating_add(pointer_bytes) > MAX_ARG_BYTES {
        return Err(Errno::E2BIG);
    }

    // Addresses, top down; running below address 0 is E2BIG.
    let e2big = Errno::E2BIG;
    let mut p = top.checked_sub(w).ok_or(e2big)?; // the final zero word
    p = p.checked_sub(string_bytes as u64).ok_or(e2big)?;
    let strings_at = p;
    let platform_at = match spec.platform {
        Some(s) => {
            p = p.checked_sub(s.len() as u64 + 1).ok_or(e2big)?;
            Some(p)
        }
        None => None,
    };
    let phdr_at = match spec.phdr_copy {
        Some(b) => {
            p = p.checked_sub(b.len() as u64).ok_or(e2big)? & !7;
            Some(p)
        }
        None => None,
    };
    p = p.checked_sub(16).ok_or(e2big)?;
    let random_at = p;

    // String addresses in order: argv, envp, execfn.
    let mut addrs = Vec::with_capacity(spec.argv.len() + spec.envp.len() + 1);
    let mut at_ = strings_at;
    for s in strings.clone() {
        addrs.push(at_);
        at_ += s.len() as u64 + 1;
    }
    let (argv_addrs, rest) = addrs.split_at(spec.argv.len());
    let (envp_addrs, execfn_addr) = rest.split_at(spec.envp.len());
    let execfn_addr = execfn_addr[0];

    let aux = &spec.aux;
    let mut auxv: Vec<AuxEntry> = alloc::vec![
        (at::AT_HWCAP.into(), aux.hwcap),
        (at::AT_PAGESZ.into(), PAGE_SIZE),
        (at::AT_CLKTCK.into(), aux.clktck),
        (at::AT_PHDR.into(), phdr_at.unwrap_or(aux.phdr)),
        (at::AT_PHENT.into(), aux.phent),
        (at::AT_PHNUM.into(), aux.phnum),
        (at::AT_BASE.into(), aux.base),
        (at::AT_FLAGS.into(), 0),
        (at::AT_ENTRY.into(), aux.entry),
        (at::AT_UID.into(), aux.uid.into()),
        (at::AT_EUID.into(), aux.euid.into()),
        (at::AT_GID.into(), aux.gid.into()),
        (at::AT_EGID.into(), aux.egid.into()),
        (at::AT_SECURE.into(), aux.secure.into()),
        (at::AT_RANDOM.into(), random_at),
        (at::AT_EXECFN.into(), execfn_addr),
    ];
    if let Some(a) = platform_at {
        auxv.push((at::AT_PLATFORM.into(), a));
    }
    auxv.push((at::AT_NULL.into(), 0));

    let words = 1 + (argv_addrs.len() + 1) + (envp_addrs.len() + 1) + 2 * auxv.len();
    let sp = p.checked_sub(words as u64 * w).ok_or(e2big)? & !15;

    let mut bytes = alloc::vec![0u8; (top - sp) as usize];
    let mut put_word = |addr: u64, v: u64| {
        let off = (addr - sp) as usize;
        bytes[off..off + w as usize].copy_from_slice(&v.to_le_bytes()[..w as usize]);
    };
    let mut cursor = sp;
    let mut push = |v: u64| {
        put_word(cursor, v);
        cursor += w;
    };
    push(argv_addrs.len() as u64);
    argv_addrs.iter().for_each(|&a| push(a));
    push(0);
    envp_addrs.iter().for_each(|&a| push(a));
    push(0);
    for &(t, v) in &auxv {
        push(t);
        push(v);
    }
    let mut put = |addr: u64, b: &[u8]| {
        let off = (addr - sp) as usize;
        bytes[off..off + b.len()].copy_from_slice(b);
    };
    put(random_at, &spec.random);
    if let (Some(a), Some(b)) = (phdr_at, spec.phdr_copy) {
        put(a, b);
    }
    if let (Some(a), Some(s)) = (platform_at, spec.platform) {
        put(a, s); // NUL already there: the buffer is zeroed.
    }
    for (s, &a) in strings.zip(addrs.iter()) {
        put(a, s);
    }
    Ok(InitialStack { abi, sp, bytes })
}

#[cfg(test)]
mod tests;
