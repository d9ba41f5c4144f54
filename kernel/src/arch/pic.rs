//! The 8259 programmable interrupt controllers (remapped to vectors 32–47) and
//! the 8253/8254 programmable interval timer, channel 0 at [`TIMER_HZ`];
//! channel 2 measures the TSC's frequency at boot ([`tsc_hz`]).

use pic8259::ChainedPics;
use spin::Mutex;
use x86_64::instructions::port::Port;

/// Vector of the first PIC's IRQ 0.
pub const PIC1_OFFSET: u8 = 32;
/// Vector of the second PIC's IRQ 8.
pub const PIC2_OFFSET: u8 = 40;
/// Vector of the PIT's interrupt (IRQ 0).
pub const TIMER_VECTOR: u8 = PIC1_OFFSET;
/// Timer interrupts per second: one scheduler time slice is `1 / TIMER_HZ` s.
pub const TIMER_HZ: u32 = 100;
/// Input clock of the PIT in Hz.
const PIT_INPUT_HZ: u32 = 1_193_182;

// SAFETY: the offsets put the PIC vectors right after the
// CPU exceptions and overlap nothing else.
static PICS: Mutex<ChainedPics> = Mutex::new(unsafe { ChainedPics::new(PIC1_OFFSET, PIC2_OFFSET) });

/// Remaps the PICs, unmasks only the timer, and starts the PIT at [`TIMER_HZ`].
pub fn init() {
    let mut pics = PICS.lock();
    // SAFETY: the PICs sit at their standard ports; interrupts are disabled, so
    // no IRQ arrives half-way through the initialisation.
    unsafe {
        pics.initialize();
        // IRQ 0 (timer) only; every other line masked.
        pics.write_masks(0b1111_1110, 0b1111_1111);
    }
    let divisor = (PIT_INPUT_HZ / TIMER_HZ) as u16;
    // SAFETY: 0x43 is the PIT's mode register and 0x40 channel 0's data port;
    // mode 3 (square wave), low then high byte of the divisor.
    unsafe {
        Port::<u8>::new(0x43).write(0x36);
        let mut ch0 = Port::<u8>::new(0x40);
        ch0.write(divisor as u8);
        ch0.write((divisor >> 8) as u8);
    }
}

/// Unmasks PIC line `irq` (0–15), e.g. for the NIC ([`super::enable_pci_line`]).
pub fn unmask(irq: u8) {
    let mut pics = PICS.lock();
    // SAFETY: reading and writing the PICs' mask registers only changes which
    // lines may interrupt; every vector 32–47 has a handler.
    unsafe {
        let [mut m1, mut m2] = pics.read_masks();
        if irq < 8 {
            m1 &= !(1 << irq);
        } else {
            m2 &= !(1 << (irq - 8));
            m1 &= !(1 << 2); // the cascade line
        }
        pics.write_masks(m1, m2);
    }
}

/// Masks the PIT's line (IRQ 0): on a node with several CPUs each local
/// APIC's timer gives the ticks instead.
pub fn mask_timer() {
    let mut pics = PICS.lock();
    // SAFETY: only the timer's mask bit changes; the NIC's line is kept.
    unsafe {
        let [m1, m2] = pics.read_masks();
        pics.write_masks(m1 | 1, m2);
    }
}

/// Masks every line of both PICs: device interrupts then come through the
/// I/O APIC ([`super::use_io_apic`]).
pub fn mask_all() {
    // SAFETY: masking lines only stops interrupts from the PICs.
    unsafe { PICS.lock().write_masks(0xff, 0xff) };
}

/// Signals the end of interrupt `vector` to the PIC(s).
pub fn end_of_interrupt(vector: u8) {
    // SAFETY: `vector` is the PIC interrupt being handled right now.
    unsafe { PICS.lock().notify_end_of_interrupt(vector) };
}

/// Measures the TSC's frequency with the PIT's channel 2, as Linux's
/// `pit_calibrate_tsc` does: the channel counts down `ms` milliseconds in
/// mode 0 with its gate on (the speaker off), and the TSC is read until its
/// output (port 0x61, bit 5) goes high. Polling the output, rather than
/// counting timer interrupts, does not depend on when an interrupt is
/// delivered (under QEMU's TCG a late tick made the clock up to 15% wrong).
/// The shortest of `tries` measurements is kept: a read delayed after the
/// output went high only lengthens one. Interrupts may be enabled or not.
pub fn tsc_hz(ms: u32, tries: u32) -> u64 {
    let count = (PIT_INPUT_HZ * ms / 1000).min(0xffff) as u16;
    let mut best = u64::MAX;
    for _ in 0..tries.max(1) {
        let (start, end);
        // SAFETY: 0x61 is the system control port B (bit 0: channel 2's gate,
        // bit 1: speaker data, bit 5: channel 2's output), 0x43 the PIT's
        // mode register and 0x42 channel 2's data port; channel 2 drives
        // only the speaker, which stays off. Channel 0 is not touched.
        unsafe {
            let mut control = Port::<u8>::new(0x61);
            let bits = control.read();
            control.write((bits & !0x02) | 0x01); // gate high, speaker off
            Port::<u8>::new(0x43).write(0xb0); // channel 2, lobyte/hibyte, mode 0, binary
            let mut ch2 = Port::<u8>::new(0x42);
            ch2.write(count as u8);
            ch2.write((count >> 8) as u8); // the count starts now
            start = super::rdtsc();
            let mut now = start;
            while control.read() & 0x20 == 0 {
                now = super::rdtsc();
            }
            end = now;
            control.write(bits & !0x03); // gate low, speaker off
        }
        best = best.min(end.wrapping_sub(start));
    }
    best * u64::from(PIT_INPUT_HZ) / u64::from(count)
}
