//! Harness for SiON's QEMU integration tests: builds the test disk image once,
//! boots nodes in `qemu-system-x86_64` with their serial console captured, waits
//! (always with a timeout) for lines in the log, and kills QEMU when the
//! [`Node`] guard drops. Every node's serial log is kept under
//! `target/qemu-logs/` so a failure can be read afterwards.
#![forbid(unsafe_code)]

use std::io::Read;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Memory of a test node in MiB.
pub const NODE_MEMORY_MB: u32 = 256;

/// The test disk image, built on first use (once per test binary).
pub fn test_image() -> PathBuf {
    static IMAGE: OnceLock<PathBuf> = OnceLock::new();
    IMAGE
        .get_or_init(|| {
            let image =
                sion_image::build(sion_image::Flavor::Test).expect("building the test disk image");
            image.path
        })
        .clone()
}

/// One QEMU node whose serial log is being collected. QEMU is killed on drop.
pub struct Node {
    name: String,
    child: Child,
    log: Arc<Mutex<Vec<u8>>>,
    log_path: PathBuf,
}

impl Node {
    /// Boots the test image with SiON boot arguments `cmdline` (for example
    /// `init=t-ipc`). `name` names the log file. Panics if QEMU cannot start.
    pub fn boot(name: &str, cmdline: &str) -> Node {
        Node::boot_with_monitor(name, cmdline, None)
    }

    /// Like [`Node::boot`], on a machine with `cpus` processors (QEMU's
    /// `-smp`, one host thread each).
    pub fn boot_smp(name: &str, cmdline: &str, cpus: u32) -> Node {
        Node::boot_with(name, cmdline, None, cpus)
    }

    /// Like [`Node::boot`], with QEMU's monitor on the Unix socket `monitor`
    /// (for [`Node::screendump`]).
    pub fn boot_with_monitor(name: &str, cmdline: &str, monitor: Option<&std::path::Path>) -> Node {
        Node::boot_with(name, cmdline, monitor, 1)
    }

    fn boot_with(name: &str, cmdline: &str, monitor: Option<&std::path::Path>, cpus: u32) -> Node {
        let image = test_image();
        let mut args = sion_image::qemu_args(&image, NODE_MEMORY_MB, cmdline, false);
        if cpus > 1 {
            args.extend(["-smp".into(), cpus.to_string()]);
        }
        // A per-node copy-on-write overlay is not needed: the image is opened
        // read-only in snapshot mode, so parallel nodes can share it.
        let monitor = monitor.map_or("none".to_string(), |p| {
            format!("unix:{},server,nowait", p.display())
        });
        args.extend([
            "-snapshot".into(),
            "-serial".into(),
            "stdio".into(),
            "-monitor".into(),
            monitor,
        ]);
        let mut child = Command::new("qemu-system-x86_64")
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting qemu-system-x86_64 (install it: apt-get install qemu-system-x86)");
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut stdout = child.stdout.take().expect("piped stdout");
        let sink = Arc::clone(&log);
        std::thread::spawn(move || {
            let mut chunk = [0u8; 4096];
            while let Ok(n) = stdout.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().extend_from_slice(&chunk[..n]);
            }
        });
        let log_dir = sion_image::target_dir().join("qemu-logs");
        let _ = std::fs::create_dir_all(&log_dir);
        Node {
            name: name.into(),
            child,
            log,
            log_path: log_dir.join(format!("{name}.log")),
        }
    }

    /// Everything the node has printed so far.
    pub fn log(&self) -> String {
        String::from_utf8_lossy(&self.log.lock().unwrap()).into_owned()
    }

    /// Waits until a line containing `needle` appears and returns that line.
    /// Panics, showing the log, after `timeout` or if QEMU ends first.
    pub fn wait_for(&mut self, needle: &str, timeout: Duration) -> String {
        self.wait_for_all(&[needle], timeout).remove(0)
    }

    /// Waits until each of `needles` appears in some line; returns the first
    /// matching line of each. Panics, showing the log, on timeout or QEMU exit.
    pub fn wait_for_all(&mut self, needles: &[&str], timeout: Duration) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let log = self.log();
            let found: Vec<Option<String>> = needles
                .iter()
                .map(|n| log.lines().find(|l| l.contains(n)).map(str::to_owned))
                .collect();
            if found.iter().all(Option::is_some) {
                return found.into_iter().map(Option::unwrap).collect();
            }
            if log.contains("KERNEL PANIC") || log.contains("KERNEL FAULT") {
                self.fail(&format!("the kernel died while waiting for {needles:?}"));
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                std::thread::sleep(Duration::from_millis(100)); // let the reader drain
                self.fail(&format!(
                    "QEMU ended ({status}) while waiting for {needles:?}"
                ));
            }
            if Instant::now() >= deadline {
                self.fail(&format!(
                    "timed out after {timeout:?} waiting for {needles:?}"
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The node's screen as (width, height, RGB bytes), taken with the QEMU
    /// monitor's `screendump` through the socket given to
    /// [`Node::boot_with_monitor`]. Panics after 10 s without a picture.
    pub fn screendump(&self, monitor: &std::path::Path) -> (usize, usize, Vec<u8>) {
        use std::io::Write;
        use std::os::unix::net::UnixStream;
        let out = self.log_path.with_extension("ppm");
        let _ = std::fs::remove_file(&out);
        let mut sock = UnixStream::connect(monitor).expect("connecting to the QEMU monitor");
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        writeln!(sock, "screendump {}", out.display()).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(data) = std::fs::read(&out) {
                // P6\n<w> <h>\n255\n<rgb…>
                let mut fields = data.splitn(4, |&b| b == b'\n');
                let (magic, size, _max, pixels) =
                    (fields.next(), fields.next(), fields.next(), fields.next());
                if let (Some(b"P6"), Some(size), Some(pixels)) = (magic, size, pixels) {
                    let size = String::from_utf8_lossy(size);
                    let mut dims = size
                        .split_whitespace()
                        .map(|v| v.parse::<usize>().unwrap_or(0));
                    let (w, h) = (dims.next().unwrap_or(0), dims.next().unwrap_or(0));
                    if w > 0 && pixels.len() == w * h * 3 {
                        return (w, h, pixels.to_vec());
                    }
                }
            }
            assert!(
                Instant::now() < deadline,
                "no screendump from node {}",
                self.name
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Lines of the log containing `needle`.
    pub fn lines_with(&self, needle: &str) -> Vec<String> {
        self.log()
            .lines()
            .filter(|l| l.contains(needle))
            .map(str::to_owned)
            .collect()
    }

    fn fail(&self, why: &str) -> ! {
        let log = self.log();
        let _ = std::fs::write(&self.log_path, &log);
        panic!(
            "node {}: {why}\n--- serial log (kept at {}) ---\n{log}",
            self.name,
            self.log_path.display()
        );
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::write(&self.log_path, self.log());
    }
}
