//! The loader on real executables built here by the host's compilers: static
//! musl and glibc programs for x86_64 and i386, static-PIEs, and dynamically
//! linked programs (refused). Each accepted program is also run on the host
//! (with address randomisation off when `setarch -R` works) and the auxiliary
//! values Linux gave it are compared with the plan.
//!
//! A compiler that is missing (Debian `musl-tools`, `gcc-multilib`) skips its
//! cases with a printed note; the core loader tests in the library use
//! self-built images and always run.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use sion_app_mgr::Abi;
use sion_app_mgr::abi::{PAGE_SIZE, page_down};
use sion_app_mgr::elf_load::{ElfError, ElfKind, LoadConfig, LoadPlan, PhdrLocation, load_plan};
use sion_app_mgr::stack::{self, StackSpec};

/// Prints what Linux put in its auxiliary vector, and the initial break.
const PROGRAM: &str = r#"
#include <stdio.h>
#include <sys/auxv.h>
#include <unistd.h>
int main(int argc, char **argv) {
    printf("phdr=%lx phent=%lx phnum=%lx entry=%lx pagesz=%lx brk=%lx\n",
           getauxval(AT_PHDR), getauxval(AT_PHENT), getauxval(AT_PHNUM),
           getauxval(AT_ENTRY), getauxval(AT_PAGESZ), (unsigned long)sbrk(0));
    return argc == 1 ? 3 : 4;
}
"#;

fn workdir() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("sion-app-mgr-real-binaries");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("aux.c"), PROGRAM).unwrap();
        dir
    })
    .clone()
}

/// A test that cannot run here (a compiler missing, a program that does not
/// run on this host) is skipped with `note`, or fails when
/// `SION_REQUIRE_ALL=1` (as CI sets): CI must run every test.
fn skip(note: &str) {
    assert!(
        std::env::var("SION_REQUIRE_ALL").as_deref() != Ok("1"),
        "SION_REQUIRE_ALL=1 but this test cannot run: {note}"
    );
    eprintln!("note: skipping: {note}");
}

/// Compiles the test program with `cc args`, or returns `None` with a note
/// when the compiler (or its 32-bit / musl support) is not installed.
fn build(cc: &str, args: &[&str], name: &str) -> Option<Vec<u8>> {
    let dir = workdir();
    let out = dir.join(name);
    let status = Command::new(cc)
        .args(args)
        .arg(dir.join("aux.c"))
        .arg("-o")
        .arg(&out)
        .output();
    match status {
        Ok(o) if o.status.success() => Some(std::fs::read(&out).unwrap()),
        Ok(o) => {
            skip(&format!(
                "{name}: `{cc} {}` failed (install musl-tools / gcc-multilib): {}",
                args.join(" "),
                String::from_utf8_lossy(&o.stderr)
                    .lines()
                    .next()
                    .unwrap_or("")
            ));
            None
        }
        Err(e) => {
            skip(&format!(
                "{name}: no `{cc}` ({e}); install musl-tools / gcc-multilib"
            ));
            None
        }
    }
}

/// What the program printed when run on this host.
fn run_on_host(name: &str) -> Option<BTreeMap<String, u64>> {
    let path = workdir().join(name);
    let norandom = Command::new("setarch").arg("-R").arg(&path).output();
    let out = match norandom {
        Ok(o) if o.status.code() == Some(3) => o,
        _ => Command::new(&path).output().ok()?,
    };
    if out.status.code() != Some(3) {
        skip(&format!(
            "{name} did not run on this host: {:?}",
            out.status
        ));
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?;
    Some(
        text.split_whitespace()
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_string(), u64::from_str_radix(v, 16).unwrap()))
            .collect(),
    )
}

/// Loads `file` per `plan` into a sparse page map.
fn load(plan: &LoadPlan, file: &[u8]) -> BTreeMap<u64, Vec<u8>> {
    let mut pages = BTreeMap::new();
    for m in plan.mappings() {
        for p in (m.start..m.end).step_by(PAGE_SIZE as usize) {
            pages.insert(p, vec![0u8; PAGE_SIZE as usize]);
        }
    }
    for s in &plan.segments {
        for (i, &b) in file[s.file_range()].iter().enumerate() {
            let a = s.vaddr + i as u64;
            pages.get_mut(&page_down(a)).unwrap()[(a % PAGE_SIZE) as usize] = b;
        }
    }
    pages
}

fn read(pages: &BTreeMap<u64, Vec<u8>>, addr: u64, len: usize) -> Vec<u8> {
    (0..len as u64)
        .map(|i| pages[&page_down(addr + i)][((addr + i) % PAGE_SIZE) as usize])
        .collect()
}

/// Checks a plan against the file and against what Linux did with it.
fn check_accepted(name: &str, file: &[u8], abi: Abi, kind: ElfKind) {
    let plan = load_plan(file, &LoadConfig::default()).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(plan.abi, abi, "{name}");
    assert_eq!(plan.kind, kind, "{name}");
    assert!(
        plan.segments
            .iter()
            .any(|s| s.prot.exec && s.vaddr <= plan.entry && plan.entry < s.vaddr + s.mem_len),
        "{name}: entry"
    );
    let top = plan
        .segments
        .iter()
        .map(|s| s.vaddr + s.mem_len)
        .max()
        .unwrap();
    assert_eq!(
        plan.brk_start,
        top.div_ceil(PAGE_SIZE) * PAGE_SIZE,
        "{name}: brk"
    );

    // The bytes at AT_PHDR are the program-header table.
    let PhdrLocation::Loaded(phdr) = plan.phdr else {
        panic!("{name}: program headers not loaded")
    };
    let mem = load(&plan, file);
    let (phoff, ehsize) = match abi {
        Abi::X86_64 => (u64::from_le_bytes(file[32..40].try_into().unwrap()), 64),
        Abi::I386 => (
            u64::from(u32::from_le_bytes(file[28..32].try_into().unwrap())),
            52,
        ),
    };
    assert_eq!(phoff, ehsize, "{name}: phoff");
    let table_len = usize::from(plan.phent) * usize::from(plan.phnum);
    assert_eq!(
        read(&mem, phdr, table_len),
        file[phoff as usize..phoff as usize + table_len]
    );

    // An initial stack for it.
    let argv: [&[u8]; 2] = [name.as_bytes(), b"arg"];
    let envp: [&[u8]; 1] = [b"HOME=/"];
    let layout = LoadConfig::default();
    let st = stack::build(&StackSpec::new(
        &plan,
        layout.layout(abi).stack_top,
        &argv,
        &envp,
        name.as_bytes(),
        [7; 16],
    ))
    .unwrap();
    assert_eq!(st.sp % 16, 0);
    assert_eq!(st.argc(), 2);

    // What Linux gave the same program.
    let Some(linux) = run_on_host(name) else {
        return;
    };
    assert_eq!(linux["phent"], u64::from(plan.phent), "{name}");
    assert_eq!(linux["phnum"], u64::from(plan.phnum), "{name}");
    assert_eq!(linux["pagesz"], PAGE_SIZE, "{name}");
    match kind {
        ElfKind::Static => {
            assert_eq!(linux["phdr"], phdr, "{name}: AT_PHDR");
            assert_eq!(linux["entry"], plan.entry, "{name}: AT_ENTRY");
        }
        ElfKind::StaticPie | ElfKind::Dynamic => {
            // Linux chose another base; the offsets within the image agree.
            assert_eq!(
                linux["entry"] - linux["phdr"],
                plan.entry - phdr,
                "{name}: entry - phdr"
            );
        }
    }
}

#[test]
fn musl_static_x86_64() {
    let Some(file) = build("musl-gcc", &["-static", "-O1"], "musl-static") else {
        return;
    };
    check_accepted("musl-static", &file, Abi::X86_64, ElfKind::Static);
    // musl's startup does not move the break before main: with randomisation
    // off, Linux's initial break is the plan's.
    let plan = load_plan(&file, &LoadConfig::default()).unwrap();
    let norandom = Command::new("setarch")
        .args(["-R", "true"])
        .status()
        .is_ok_and(|s| s.success());
    if let (true, Some(linux)) = (norandom, run_on_host("musl-static")) {
        assert_eq!(linux["brk"], plan.brk_start);
    }
}

#[test]
fn glibc_static_x86_64() {
    let Some(file) = build("gcc", &["-static", "-O1"], "glibc-static") else {
        return;
    };
    check_accepted("glibc-static", &file, Abi::X86_64, ElfKind::Static);
    // glibc's static TLS lives in PT_TLS.
    assert!(
        load_plan(&file, &LoadConfig::default())
            .unwrap()
            .tls
            .is_some()
    );
}

#[test]
fn glibc_static_pie_x86_64() {
    let Some(file) = build("gcc", &["-static-pie", "-O1"], "glibc-static-pie") else {
        return;
    };
    check_accepted("glibc-static-pie", &file, Abi::X86_64, ElfKind::StaticPie);
    let plan = load_plan(&file, &LoadConfig::default()).unwrap();
    assert_eq!(plan.bias, 0x5555_5555_4000);
}

#[test]
fn glibc_static_i386() {
    let Some(file) = build("gcc", &["-m32", "-static", "-O1"], "glibc-static-i386") else {
        return;
    };
    check_accepted("glibc-static-i386", &file, Abi::I386, ElfKind::Static);
}

#[test]
fn glibc_static_pie_i386() {
    let Some(file) = build(
        "gcc",
        &["-m32", "-static-pie", "-O1"],
        "glibc-static-pie-i386",
    ) else {
        return;
    };
    check_accepted(
        "glibc-static-pie-i386",
        &file,
        Abi::I386,
        ElfKind::StaticPie,
    );
    let plan = load_plan(&file, &LoadConfig::default()).unwrap();
    assert_eq!(plan.bias, 0x5655_5000);
}

#[test]
fn dynamically_linked_programs_name_their_interpreter() {
    // Debian's /bin/true: a glibc PIE, loaded as a static-PIE would be,
    // beside its interpreter.
    for path in ["/bin/true", "/usr/bin/true"] {
        let Ok(file) = std::fs::read(path) else {
            continue;
        };
        let plan = load_plan(&file, &LoadConfig::default()).unwrap();
        assert_eq!(plan.kind, ElfKind::Dynamic, "{path}");
        assert_eq!(
            plan.interp.as_deref(),
            Some(&b"/lib64/ld-linux-x86-64.so.2"[..]),
            "{path}"
        );
        // Refused where interpreters are not allowed, with what to do.
        let strict = LoadConfig {
            allow_interpreter: false,
            ..LoadConfig::default()
        };
        let err = load_plan(&file, &strict).unwrap_err();
        assert_eq!(err, ElfError::DynamicallyLinked { interpreter: true });
        assert!(err.to_string().contains("rebuild with -static"));
        // The interpreter itself is a static-PIE.
        let ld = std::fs::read("/lib64/ld-linux-x86-64.so.2").unwrap();
        let ld_plan = load_plan(&ld, &LoadConfig::default()).unwrap();
        assert_eq!((ld_plan.kind, ld_plan.interp), (ElfKind::StaticPie, None));
        return;
    }
    skip("no /bin/true to test");
}

#[test]
fn dynamic_builds_are_planned_with_their_interpreter() {
    if let Some(file) = build("gcc", &["-O1"], "glibc-dynamic") {
        let plan = load_plan(&file, &LoadConfig::default()).unwrap();
        assert_eq!(plan.kind, ElfKind::Dynamic);
        assert_eq!(
            plan.interp.as_deref(),
            Some(&b"/lib64/ld-linux-x86-64.so.2"[..])
        );
    }
    if let Some(file) = build("gcc", &["-m32", "-O1"], "glibc-dynamic-i386") {
        let plan = load_plan(&file, &LoadConfig::default()).unwrap();
        assert_eq!(plan.abi, Abi::I386);
        assert_eq!(plan.interp.as_deref(), Some(&b"/lib/ld-linux.so.2"[..]));
    }
}

#[test]
fn object_files_are_refused() {
    let Some(_) = build("gcc", &["-c", "-O1"], "aux.o") else {
        return;
    };
    let file = std::fs::read(workdir().join("aux.o")).unwrap();
    let err = load_plan(&file, &LoadConfig::default()).unwrap_err();
    assert_eq!(err, ElfError::NotExecutable { e_type: 1 });
}
