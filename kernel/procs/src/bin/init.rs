//! The first process of a SiON node. For now it announces the node and ends;
//! the Companion Manager and the App-Program Manager will be started from here.
#![no_std]
#![no_main]

sion_rt::entry!(main);

fn main(_arg: &[u8]) -> i32 {
    sion_rt::println!("init: SiON node up (process {})", sion_rt::sys::getpid());
    0
}
