//! FPU and SSE state: enabled at boot, saved and restored with `fxsave64` /
//! `fxrstor64` on every context switch, so each process keeps its own x87, MMX
//! and XMM registers (Intel SDM Vol. 1 §10.5).

use x86_64::registers::control::{Cr0, Cr0Flags, Cr4, Cr4Flags};

/// The 512-byte `fxsave` area (SDM Vol. 1 Table 10-2), 16-byte aligned.
#[repr(C, align(16))]
#[derive(Clone)]
pub struct FpuState([u8; 512]);

const _: () = assert!(core::mem::size_of::<FpuState>() == 512);

impl FpuState {
    /// The state of a fresh process: x87 control word 0x037F and MXCSR 0x1F80
    /// (all exceptions masked, round to nearest), as after `FNINIT`.
    pub fn new() -> FpuState {
        let mut area = [0u8; 512];
        area[0..2].copy_from_slice(&0x037Fu16.to_le_bytes());
        area[24..28].copy_from_slice(&0x1F80u32.to_le_bytes());
        FpuState(area)
    }

    /// The 512 bytes, as `fxsave64` wrote them.
    pub fn bytes(&self) -> &[u8; 512] {
        &self.0
    }

    /// Replaces the area with `image` (an `fxsave` image a process gave),
    /// keeping only MXCSR bits this CPU has (`MXCSR_MASK`, SDM Vol. 1
    /// §11.6.6), so `fxrstor64` cannot fault on it.
    pub fn set_bytes(&mut self, image: &[u8; 512]) {
        self.0 = *image;
        let mxcsr = u32::from_le_bytes([image[24], image[25], image[26], image[27]]);
        self.0[24..28].copy_from_slice(&(mxcsr & mxcsr_mask()).to_le_bytes());
        // The mask field itself is the CPU's to report.
        self.0[28..32].copy_from_slice(&mxcsr_mask().to_le_bytes());
    }

    /// Saves the CPU's current FPU/SSE registers here.
    pub fn save(&mut self) {
        // SAFETY: the area is 512 bytes and 16-byte aligned as FXSAVE64 requires;
        // SSE was enabled by `init`.
        unsafe { core::arch::asm!("fxsave64 [{}]", in(reg) self.0.as_mut_ptr(), options(nostack)) };
    }

    /// Loads the FPU/SSE registers from here.
    pub fn restore(&self) {
        // SAFETY: the area was produced by `new` or `save`, so its reserved
        // MXCSR bits are clear and FXRSTOR64 cannot fault.
        unsafe { core::arch::asm!("fxrstor64 [{}]", in(reg) self.0.as_ptr(), options(nostack)) };
    }
}

/// The MXCSR bits this CPU supports: `MXCSR_MASK` from an `fxsave` image,
/// 0xFFBF where it reads 0 (SDM Vol. 1 §11.6.6).
pub fn mxcsr_mask() -> u32 {
    static MASK: spin::Once<u32> = spin::Once::new();
    *MASK.call_once(|| {
        let mut area = FpuState::new();
        area.save();
        match u32::from_le_bytes([area.0[28], area.0[29], area.0[30], area.0[31]]) {
            0 => 0xFFBF,
            m => m,
        }
    })
}

/// Enables x87 and SSE for all privilege levels: CR0.EM = 0, CR0.MP = 1,
/// CR0.TS = 0, CR4.OSFXSR = 1, CR4.OSXMMEXCPT = 1.
pub fn init() {
    // SAFETY: these bits only enable FPU/SSE instructions and their state save;
    // the kernel itself is built without SSE and never uses those registers.
    unsafe {
        Cr0::update(|f| {
            f.remove(Cr0Flags::EMULATE_COPROCESSOR | Cr0Flags::TASK_SWITCHED);
            f.insert(Cr0Flags::MONITOR_COPROCESSOR);
        });
        Cr4::update(|f| f.insert(Cr4Flags::OSFXSR | Cr4Flags::OSXMMEXCPT_ENABLE));
        core::arch::asm!("fninit", options(nomem, nostack));
    }
}
