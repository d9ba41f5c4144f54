//! Tests of the initial stack layout for both ABIs.

use super::*;
use crate::elf_load::{LoadConfig, load_plan};
use crate::testelf::TestElf;
use alloc::vec;

const RANDOM: [u8; 16] = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16];

fn plan_of(e: &TestElf) -> LoadPlan {
    load_plan(&e.bytes(), &LoadConfig::default()).unwrap()
}

/// Checks the invariants every stack must satisfy and returns argv/envp strings.
fn check(st: &InitialStack, top: u64) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    assert_eq!(st.sp % 16, 0, "sp must be 16-byte aligned");
    assert_eq!(st.top(), top);
    let w = st.abi.word_size() as u64;
    // The last word is zero (end marker).
    assert_eq!(st.word_at(top - w), Some(0));
    let argv: Vec<Vec<u8>> = st
        .argv_pointers()
        .iter()
        .map(|&p| st.str_at(p).unwrap().to_vec())
        .collect();
    let envp: Vec<Vec<u8>> = st
        .envp_pointers()
        .iter()
        .map(|&p| st.str_at(p).unwrap().to_vec())
        .collect();
    assert_eq!(argv.len() as u64, st.argc());
    // Every pointer points inside the stack, above the vectors.
    let vectors_end = st.sp
        + w * (1
            + argv.len() as u64
            + 1
            + envp.len() as u64
            + 1
            + 2 * (st.auxv().len() as u64 + 1));
    for p in st.argv_pointers().into_iter().chain(st.envp_pointers()) {
        assert!(p >= vectors_end && p < top, "{p:#x}");
    }
    let random = st.aux(at::AT_RANDOM).unwrap();
    assert!(random >= vectors_end && random + 16 <= top);
    (argv, envp)
}

#[test]
fn x86_64_stack() {
    let plan = plan_of(&TestElf::exec64());
    let top = 0x7fff_ffff_f000;
    let argv: [&[u8]; 3] = [b"prog", b"a", b"bc"];
    let envp: [&[u8]; 2] = [b"A=1", b"PATH=/bin"];
    let mut spec = StackSpec::new(&plan, top, &argv, &envp, b"/job/prog", RANDOM);
    spec.aux.uid = 1000;
    spec.aux.euid = 1001;
    spec.aux.gid = 100;
    spec.aux.egid = 101;
    spec.aux.hwcap = 0x178b_fbff;
    let st = build(&spec).unwrap();
    let (a, e) = check(&st, top);
    assert_eq!(a, vec![b"prog".to_vec(), b"a".to_vec(), b"bc".to_vec()]);
    assert_eq!(e, vec![b"A=1".to_vec(), b"PATH=/bin".to_vec()]);

    // Word layout from sp: argc, argv[0..3], NULL, envp[0..2], NULL, auxv.
    assert_eq!(st.word_at(st.sp), Some(3));
    assert_eq!(st.word_at(st.sp + 8), Some(st.argv_pointers()[0]));
    assert_eq!(st.word_at(st.sp + 32), Some(0));
    assert_eq!(st.word_at(st.sp + 40), Some(st.envp_pointers()[0]));
    assert_eq!(st.word_at(st.sp + 56), Some(0));
    assert_eq!(st.word_at(st.sp + 64), Some(u64::from(at::AT_HWCAP)));
    assert_eq!(st.word_at(st.sp + 72), Some(0x178b_fbff));

    let aux = |t: u32| st.aux(t).unwrap_or_else(|| panic!("missing AT_{t}"));
    assert_eq!(aux(at::AT_PHDR), 0x400040);
    assert_eq!(aux(at::AT_PHENT), 56);
    assert_eq!(aux(at::AT_PHNUM), 5);
    assert_eq!(aux(at::AT_PAGESZ), 4096);
    assert_eq!(aux(at::AT_ENTRY), 0x401010);
    assert_eq!(aux(at::AT_UID), 1000);
    assert_eq!(aux(at::AT_EUID), 1001);
    assert_eq!(aux(at::AT_GID), 100);
    assert_eq!(aux(at::AT_EGID), 101);
    assert_eq!(aux(at::AT_HWCAP), 0x178b_fbff);
    assert_eq!(aux(at::AT_CLKTCK), 100);
    assert_eq!(aux(at::AT_SECURE), 0);
    assert_eq!(aux(at::AT_BASE), 0);
    assert_eq!(aux(at::AT_FLAGS), 0);
    assert_eq!(st.aux(at::AT_PLATFORM), None);
    let random = aux(at::AT_RANDOM);
    let off = (random - st.sp) as usize;
    assert_eq!(&st.bytes[off..off + 16], &RANDOM);
    assert_eq!(st.str_at(aux(at::AT_EXECFN)), Some(&b"/job/prog"[..]));
    // The strings sit at the top, argv first, execfn last, then the zero word.
    assert_eq!(aux(at::AT_EXECFN), top - 8 - 10);
    assert!(st.argv_pointers()[0] < st.envp_pointers()[0]);
    // The whole thing is small.
    assert!(st.bytes.len() < 512, "{}", st.bytes.len());
}

#[test]
fn i386_stack_uses_4_byte_words() {
    let plan = plan_of(&TestElf::exec32());
    let top = 0xffff_e000;
    let argv: [&[u8]; 2] = [b"/bin/x", b"--flag"];
    let envp: [&[u8]; 1] = [b"HOME=/"];
    let st = build(&StackSpec::new(&plan, top, &argv, &envp, b"x", RANDOM)).unwrap();
    let (a, e) = check(&st, top);
    assert_eq!(a, vec![b"/bin/x".to_vec(), b"--flag".to_vec()]);
    assert_eq!(e, vec![b"HOME=/".to_vec()]);
    assert_eq!(st.abi, Abi::I386);
    // argc, argv[0], argv[1], NULL, envp[0], NULL, then AT_HWCAP at word 6.
    assert_eq!(st.word_at(st.sp), Some(2));
    assert_eq!(st.word_at(st.sp + 12), Some(0));
    assert_eq!(st.word_at(st.sp + 20), Some(0));
    assert_eq!(st.word_at(st.sp + 24), Some(u64::from(at::AT_HWCAP)));
    assert_eq!(st.word_at(st.sp + 32), Some(u64::from(at::AT_PAGESZ)));
    assert_eq!(st.word_at(st.sp + 36), Some(4096));
    assert_eq!(st.aux(at::AT_PHDR), Some(0x8048000 + 52));
    assert_eq!(st.aux(at::AT_PHENT), Some(32));
    assert_eq!(st.aux(at::AT_ENTRY), Some(0x8049010));
    for p in st.argv_pointers() {
        assert!(p < 1 << 32);
    }
}

#[test]
fn sp_is_aligned_for_every_shape() {
    let plan64 = plan_of(&TestElf::exec64());
    let plan32 = plan_of(&TestElf::exec32());
    let words: [&[u8]; 9] = [
        b"",
        b"x",
        b"yy",
        b"zzz",
        b"0123456",
        b"01234567",
        b"012345678",
        b"a=b",
        b"c",
    ];
    for plan in [&plan64, &plan32] {
        let top = if plan.abi == Abi::I386 {
            0xffff_e000
        } else {
            0x7fff_ffff_f000
        };
        for nargs in 0..words.len() {
            for nenv in 0..4 {
                for execfn in [&b"p"[..], b"/a/longer/path"] {
                    let spec =
                        StackSpec::new(plan, top, &words[..nargs], &words[..nenv], execfn, RANDOM);
                    let st = build(&spec).unwrap();
                    let (a, e) = check(&st, top);
                    assert_eq!(a.len(), nargs);
                    assert_eq!(e.len(), nenv);
                    for (got, want) in a.iter().zip(&words[..nargs]) {
                        assert_eq!(got.as_slice(), *want);
                    }
                }
            }
        }
    }
}

#[test]
fn program_headers_copied_when_not_loaded() {
    let mut e = TestElf::exec64();
    e.phoff = Some(0x2100);
    e.file_len = 0x2400;
    let file = e.bytes();
    let plan = load_plan(&file, &LoadConfig::default()).unwrap();
    let crate::elf_load::PhdrLocation::NotLoaded { offset, len } = plan.phdr else {
        panic!("expected NotLoaded")
    };
    let table = &file[offset as usize..(offset + len) as usize];
    let argv: [&[u8]; 1] = [b"p"];
    let mut spec = StackSpec::new(&plan, 0x7fff_ffff_f000, &argv, &[], b"p", RANDOM);
    assert_eq!(spec.aux.phdr, 0);
    spec.phdr_copy = Some(table);
    let st = build(&spec).unwrap();
    check(&st, 0x7fff_ffff_f000);
    let phdr = st.aux(at::AT_PHDR).unwrap();
    assert_eq!(phdr % 8, 0);
    let off = (phdr - st.sp) as usize;
    assert_eq!(&st.bytes[off..off + table.len()], table);
}

#[test]
fn platform_string() {
    let plan = plan_of(&TestElf::exec64());
    let mut spec = StackSpec::new(&plan, 0x7fff_ffff_f000, &[], &[], b"p", RANDOM);
    spec.platform = Some(b"x86_64");
    let st = build(&spec).unwrap();
    check(&st, 0x7fff_ffff_f000);
    assert_eq!(st.argc(), 0);
    assert_eq!(
        st.str_at(st.aux(at::AT_PLATFORM).unwrap()),
        Some(&b"x86_64"[..])
    );
}

#[test]
fn errors() {
    let plan = plan_of(&TestElf::exec64());
    let bad: [&[u8]; 1] = [b"a\0b"];
    let top = 0x7fff_ffff_f000;
    assert_eq!(
        build(&StackSpec::new(&plan, top, &bad, &[], b"p", RANDOM)),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        build(&StackSpec::new(&plan, top, &[], &bad, b"p", RANDOM)),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        build(&StackSpec::new(&plan, top, &[], &[], b"p\0", RANDOM)),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        build(&StackSpec::new(&plan, top + 8, &[], &[], b"p", RANDOM)),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        build(&StackSpec::new(&plan, 0, &[], &[], b"p", RANDOM)),
        Err(Errno::EINVAL)
    );
    let mut spec = StackSpec::new(&plan, top, &[], &[], b"p", RANDOM);
    spec.platform = Some(b"x\0");
    assert_eq!(build(&spec), Err(Errno::EINVAL));

    // i386 stack top above 4 GiB.
    let plan32 = plan_of(&TestElf::exec32());
    assert_eq!(
        build(&StackSpec::new(
            &plan32,
            0x1_0000_1000,
            &[],
            &[],
            b"p",
            RANDOM
        )),
        Err(Errno::EINVAL)
    );
    assert!(
        build(&StackSpec::new(
            &plan32,
            0x1_0000_0000,
            &[],
            &[],
            b"p",
            RANDOM
        ))
        .is_ok()
    );

    // Too much argument data.
    let big = vec![b'x'; MAX_ARG_BYTES];
    let args: [&[u8]; 1] = [&big];
    assert_eq!(
        build(&StackSpec::new(&plan, top, &args, &[], b"p", RANDOM)),
        Err(Errno::E2BIG)
    );
    // Just under the limit works (strings + NULs + pointers).
    let ok = vec![b'x'; MAX_ARG_BYTES - 8 - 1 - 2];
    let args: [&[u8]; 1] = [&ok];
    let st = build(&StackSpec::new(&plan, top, &args, &[], b"p", RANDOM)).unwrap();
    assert_eq!(st.str_at(st.argv_pointers()[0]).unwrap().len(), ok.len());
    // Many tiny strings count their pointers too.
    let many: Vec<&[u8]> = vec![b""; MAX_ARG_BYTES / 8];
    assert_eq!(
        build(&StackSpec::new(&plan, top, &many, &[], b"p", RANDOM)),
        Err(Errno::E2BIG)
    );

    // A stack top too low to hold the stack.
    assert_eq!(
        build(&StackSpec::new(&plan, 0x1000, &args, &[], b"p", RANDOM)),
        Err(Errno::E2BIG)
    );
}
