//! The ELF loader on hostile files: what `hostd submit` (or a program's
//! `execve`) hands a node's App-Program Manager.
//!
//! The input is the file. It goes through (`app-mgr/src/elf_load.rs`):
//!
//! - [`elf_load::identify`] and [`elf_load::load_plan`] with the default
//!   limits; an accepted file's [`LoadPlan`] must keep its promises
//!   (segments sorted, disjoint, page-rounded, inside the layout and the
//!   file; the entry in an executable segment; mappings disjoint; the image
//!   within the size limit; the program headers inside the file when not
//!   loaded);
//! - [`elf_load::load_plan_sparse`] fetching ranges from the input as the
//!   node does (a plan it makes must be the whole-file plan);
//! - with a 4 MiB job limit, the node's own loading path,
//!   [`Process::build_image`] on a [`FakeNode`] (page-granular memory): the
//!   file staged at [`STAGING`], segments mapped and copied, the stack built;
//!   a built image must hold each segment's file bytes followed by zeros
//!   (segments without permissions are not mapped).
#![no_main]

use libfuzzer_sys::fuzz_target;
use sion_app_mgr::abi::{PAGE_SIZE, page_up};
use sion_app_mgr::elf_load::{
    self, LoadConfig, LoadPlan, PhdrLocation, SparseFile, load_plan, load_plan_sparse,
};
use sion_app_mgr::process::Node;
use sion_app_mgr::process::Process;
use sion_app_mgr::process::fake::FakeNode;
use sion_app_mgr::syscall::exec::{Image, STAGING};
use sion_app_mgr::vm::{AddressSpace, Prot};

/// The job memory limit of the built image.
const LIMIT: u64 = 4 << 20;

/// Checks what [`LoadPlan`] promises about a plan of `file` under `config`.
fn check_plan(plan: &LoadPlan, file: &[u8], config: &LoadConfig) {
    let layout = config.layout(plan.abi);
    let max = layout
        .stack_bottom()
        .min(layout.max_addr)
        .min(plan.abi.max_pointer().saturating_add(1));
    assert!(!plan.segments.is_empty());
    for s in &plan.segments {
        assert!(s.start % PAGE_SIZE == 0 && s.end % PAGE_SIZE == 0, "{s:?}");
        assert!(s.start <= s.vaddr && s.vaddr + s.mem_len <= s.end, "{s:?}");
        assert!(
            s.start >= layout.min_addr && s.end <= max,
            "{s:?} outside {max:#x}"
        );
        assert!(s.file_len <= s.mem_len && s.zero_len == s.mem_len - s.file_len);
        assert!(file.get(s.file_range()).is_some(), "{s:?} beyond the file");
    }
    for w in plan.segments.windows(2) {
        assert!(w[0].vaddr + w[0].mem_len <= w[1].vaddr, "{w:?} overlap");
    }
    assert!(
        plan.segments
            .iter()
            .any(|s| s.prot.exec && s.vaddr <= plan.entry && plan.entry < s.vaddr + s.mem_len),
        "entry {:#x} outside the code",
        plan.entry
    );
    let maps = plan.mappings();
    for m in &maps {
        assert!(m.start < m.end && m.start % PAGE_SIZE == 0 && m.end % PAGE_SIZE == 0);
    }
    for w in maps.windows(2) {
        assert!(w[0].end <= w[1].start, "{w:?}");
    }
    assert!(plan.image_size() <= config.max_image_size);
    assert_eq!(
        plan.brk_start,
        plan.segments.iter().map(|s| s.end).max().unwrap_or(0)
    );
    if let PhdrLocation::NotLoaded { offset, len } = plan.phdr {
        assert!(
            offset
                .checked_add(len)
                .is_some_and(|e| e <= file.len() as u64)
        );
    }
    if let Some(interp) = &plan.interp {
        assert!(!interp.is_empty() && !interp.contains(&0));
    }
}

fuzz_target!(|data: &[u8]| {
    let config = LoadConfig::default();
    let whole = load_plan(data, &config);
    if let Ok(plan) = &whole {
        assert_eq!(elf_load::identify(data), Ok(plan.abi));
        check_plan(plan, data, &config);
    }

    let mut sparse = SparseFile::new(data.len() as u64);
    let fetched = load_plan_sparse(&mut sparse, &config, |off, n| {
        let start = usize::try_from(off).ok()?;
        let end = start.checked_add(usize::try_from(n).ok()?)?;
        data.get(start..end).map(<[u8]>::to_vec)
    });
    if let Ok(plan) = &fetched {
        assert_eq!(whole.as_ref(), Ok(plan), "the sparse plan differs");
    }

    // The node's loading path under a small job limit.
    let small = LoadConfig {
        max_image_size: LIMIT,
        ..LoadConfig::default()
    };
    let Ok(plan) = load_plan(data, &small) else {
        return;
    };
    check_plan(&plan, data, &small);
    let mut node = FakeNode::default();
    let staging = node.create_staging().expect("a staging application");
    let rw = Prot {
        read: true,
        write: true,
        exec: false,
    };
    let staged = page_up((data.len() as u64).max(1)).expect("a small file");
    node.map(staging, STAGING, staged, rw)
        .expect("staging memory");
    node.write(staging, STAGING, data).expect("staging write");
    let vm = AddressSpace::new(*small.layout(plan.abi), LIMIT);
    let mut p = Process::new(&mut node, 1, 7, plan.abi, vm);
    let image = Image {
        argv: &[b"./prog", b"arg"],
        envp: &[b"HOME=/home/u"],
        execfn: b"./prog",
    };
    let Ok((entry, sp)) = p.build_image(staging, &plan, None, &image) else {
        return;
    };
    assert_eq!(entry, plan.entry);
    assert!(sp < small.layout(plan.abi).stack_top);
    // PROT_NONE pages are not mapped (README: "PROT_NONE pages are unmapped
    // rather than reserved"); every other segment's pages are.
    for s in plan.segments.iter().filter(|s| s.prot != Prot::default()) {
        let got = p
            .read_mem(s.vaddr, s.file_len)
            .expect("segment bytes mapped");
        assert_eq!(got, &data[s.file_range()]);
        let zeros = p
            .read_mem(s.vaddr + s.file_len, s.zero_len.min(2 * PAGE_SIZE))
            .expect(".bss mapped");
        assert!(zeros.iter().all(|&b| b == 0), ".bss not zero");
    }
});
