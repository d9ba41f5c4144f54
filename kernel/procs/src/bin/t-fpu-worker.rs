//! Test process: SSE arithmetic whose exact result is known. All sixteen XMM
//! registers are live across many time slices: xmm15 holds the step `s` (the
//! argument), xmm14 counts `s, 2s, …`, xmm13 sums the counts, xmm0–xmm12 hold
//! constants that must survive. After `n` steps: count = s·n, sum = s·n(n+1)/2.
//!
//! SiON processes are built soft-float, so the SSE code is written in assembly.
#![no_std]
#![no_main]

use sion_rt::{println, sys};

sion_rt::entry!(main);

const STEPS_PER_ROUND: u64 = 2_000_000;
const ROUNDS: u64 = 6;

fn main(arg: &[u8]) -> i32 {
    let step: u64 = core::str::from_utf8(arg)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let mut regs = [0u64; 16];
    let mut errors = 0;
    let start = sys::clock_ns();
    for round in 1..=ROUNDS {
        // SAFETY: the assembly only touches XMM registers (which no Rust code in
        // this soft-float process uses), rcx/rax, and the 128 bytes of `regs`.
        unsafe {
            core::arch::asm!(
                // xmm0..xmm12 = 1000*step + i, xmm15 = step, xmm14 = xmm13 = 0.
                "mov rax, {step}", "imul rax, rax, 1000",
                "cvtsi2sd xmm0, rax", "inc rax", "cvtsi2sd xmm1, rax", "inc rax",
                "cvtsi2sd xmm2, rax", "inc rax", "cvtsi2sd xmm3, rax", "inc rax",
                "cvtsi2sd xmm4, rax", "inc rax", "cvtsi2sd xmm5, rax", "inc rax",
                "cvtsi2sd xmm6, rax", "inc rax", "cvtsi2sd xmm7, rax", "inc rax",
                "cvtsi2sd xmm8, rax", "inc rax", "cvtsi2sd xmm9, rax", "inc rax",
                "cvtsi2sd xmm10, rax", "inc rax", "cvtsi2sd xmm11, rax", "inc rax",
                "cvtsi2sd xmm12, rax",
                "cvtsi2sd xmm15, {step}",
                "xorpd xmm14, xmm14", "xorpd xmm13, xmm13",
                "2:",
                "addsd xmm14, xmm15",
                "addsd xmm13, xmm14",
                "dec rcx",
                "jnz 2b",
                "movsd [{out}], xmm0", "movsd [{out} + 8], xmm1", "movsd [{out} + 16], xmm2",
                "movsd [{out} + 24], xmm3", "movsd [{out} + 32], xmm4", "movsd [{out} + 40], xmm5",
                "movsd [{out} + 48], xmm6", "movsd [{out} + 56], xmm7", "movsd [{out} + 64], xmm8",
                "movsd [{out} + 72], xmm9", "movsd [{out} + 80], xmm10", "movsd [{out} + 88], xmm11",
                "movsd [{out} + 96], xmm12", "movsd [{out} + 104], xmm13", "movsd [{out} + 112], xmm14",
                "movsd [{out} + 120], xmm15",
                step = in(reg) step,
                out = in(reg) regs.as_mut_ptr(),
                inout("rcx") STEPS_PER_ROUND => _,
                out("rax") _,
                options(nostack),
            );
        }
        let n = STEPS_PER_ROUND;
        let mut expected = [0u64; 16];
        for (i, e) in expected.iter_mut().enumerate().take(13) {
            *e = f64_bits(step * 1000 + i as u64);
        }
        expected[13] = f64_bits(step * n * (n + 1) / 2);
        expected[14] = f64_bits(step * n);
        expected[15] = f64_bits(step);
        if regs != expected {
            errors += 1;
            println!(
                "fpu worker {step}: round {round}: WRONG registers {regs:x?}, expected {expected:x?}"
            );
        }
    }
    let ms = (sys::clock_ns() - start) / 1_000_000;
    if errors == 0 {
        println!(
            "fpu worker {step}: ok: {ROUNDS} rounds exact, sum {} ({ms} ms)",
            step * STEPS_PER_ROUND * (STEPS_PER_ROUND + 1) / 2
        );
        0
    } else {
        println!("fpu worker {step}: FAILED in {errors} rounds");
        1
    }
}

/// The IEEE 754 bits of integer `v` (exact below 2^53), computed without
/// floating-point code, which this soft-float build would emulate anyway.
fn f64_bits(v: u64) -> u64 {
    if v == 0 {
        return 0;
    }
    let exponent = 63 - u64::from(v.leading_zeros());
    let mantissa = (v << (63 - exponent)) << 1 >> 12; // drop the leading 1
    ((exponent + 1023) << 52) | mantissa
}
