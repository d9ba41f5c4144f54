//! Rebuilding a job from a hostile checkpoint image: what a `hostd` holding
//! the cluster key uploads with `Start::restore` (the image a node sent it
//! earlier, or any bytes).
//!
//! The input is the image. It goes through the node's own path
//! ([`checkpoint::restore`], `app-mgr/src/checkpoint.rs`) into a
//! [`Process`] on a [`FakeNode`] with a 4 MiB job limit; a rebuilt job must
//! keep the promises: its regions inside the layout and the limit, disjoint
//! and page-aligned, no region in the reserved staging range, and it must
//! resume ([`Process::resume_restored`]) with the image's registers.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sion_app_mgr::Abi;
use sion_app_mgr::abi::{PAGE_SIZE, UserLayout};
use sion_app_mgr::checkpoint;
use sion_app_mgr::process::Process;
use sion_app_mgr::process::fake::FakeNode;
use sion_app_mgr::syscall::exec::STAGING;
use sion_app_mgr::vm::AddressSpace;

/// The job memory limit.
const LIMIT: u64 = 4 << 20;

fuzz_target!(|data: &[u8]| {
    let mut node = FakeNode::default();
    node.first_pid = 7;
    let layout = UserLayout::for_abi(Abi::X86_64);
    let mut p = Process::new(
        &mut node,
        1,
        7,
        Abi::X86_64,
        AddressSpace::new(layout, LIMIT),
    );
    let mut read = |off: u64, len: usize| {
        let start = usize::try_from(off).ok()?;
        data.get(start..start.checked_add(len)?).map(<[u8]>::to_vec)
    };
    let reserved = (STAGING, STAGING + (1 << 20));
    let Ok(resume) = checkpoint::restore(&mut p, &mut read, data.len() as u64, reserved) else {
        return;
    };
    let mut last_end = 0;
    for r in p.task.vm.regions() {
        assert!(r.start % PAGE_SIZE == 0 && r.end % PAGE_SIZE == 0, "{r:?}");
        assert!(
            r.start >= layout.min_addr && r.end <= layout.max_addr,
            "{r:?}"
        );
        assert!(r.start >= last_end, "{r:?} overlaps");
        assert!(
            r.end <= reserved.0 || r.start >= reserved.1,
            "{r:?} in staging"
        );
        last_end = r.end;
    }
    assert!(p.task.vm.used() <= LIMIT);
    // The fake node refuses registers outside user space, as the kernel does.
    let _ = p.resume_restored(&resume);
});
