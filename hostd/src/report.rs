//! What `hostd nodes` and `hostd place` print: the serialisable rows (also the
//! JSON of `--json` and of the daemon's control socket) and their text tables.

use serde::{Deserialize, Serialize};
use sion_companion_mgr::{ScoreParts, Weights};

/// One member of the group table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NodeRow {
    /// Node id in MAC form, `52:54:00:12:34:56`.
    pub id: String,
    /// Human name.
    pub name: String,
    /// `node` or `host`.
    pub role: String,
    /// IPv4 address, `169.254.3.4`.
    pub address: String,
    /// `alive` or `suspect`.
    pub status: String,
    /// CPU load, permille (0..=1000).
    pub cpu_load_permille: u16,
    /// Free memory, MiB.
    pub free_mem_mib: u64,
    /// CPU speed as the node measured it at boot (millions of benchmark loop
    /// iterations per second; comparable between SiON nodes only).
    pub cpu_speed: u32,
    /// Jobs running or waiting on it.
    pub running_jobs: u16,
    /// Seconds since it was last heard from (one decimal).
    pub last_heard_s: f64,
    /// True for the `hostd` that produced the table.
    pub this_host: bool,
}

/// The answer to `hostd nodes`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NodesReport {
    /// Interface the group was seen on.
    pub interface: String,
    /// Our address on it.
    pub address: String,
    /// `daemon` (a running `hostd daemon` answered) or `discovery` (one-shot).
    pub via: String,
    /// How long the view has been collected, in milliseconds (the discovery
    /// window, or the daemon's uptime).
    pub listened_ms: u64,
    /// Every member, nodes first.
    pub nodes: Vec<NodeRow>,
}

impl NodesReport {
    /// Number of members with role `node`.
    pub fn node_count(&self) -> usize {
        self.nodes.iter().filter(|r| r.role == "node").count()
    }
}

/// Placement weights as JSON (`cpu`, `mem`, `speed`, `net`, like `--weights`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WeightsJson {
    /// Weight of idle CPU.
    pub cpu: u16,
    /// Weight of free memory.
    pub mem: u16,
    /// Weight of CPU speed.
    pub speed: u16,
    /// Weight of network speed.
    pub net: u16,
}

impl From<Weights> for WeightsJson {
    fn from(w: Weights) -> WeightsJson {
        WeightsJson {
            cpu: w.cpu_load,
            mem: w.free_mem,
            speed: w.cpu_speed,
            net: w.network,
        }
    }
}

/// A candidate's normalised score parts, each 0..=1000 (see the library's
/// `ScoreParts`): `score = cpu×w.cpu + mem×w.mem + speed×w.speed + net×w.net`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartsJson {
    /// Idle CPU, permille.
    pub cpu: u16,
    /// Free memory relative to the best candidate, permille.
    pub mem: u16,
    /// CPU speed relative to the fastest candidate, permille.
    pub speed: u16,
    /// Network speed (inverse round trip) relative to the fastest, permille.
    pub net: u16,
}

impl From<ScoreParts> for PartsJson {
    fn from(p: ScoreParts) -> PartsJson {
        PartsJson {
            cpu: p.cpu_load,
            mem: p.free_mem,
            speed: p.cpu_speed,
            net: p.network,
        }
    }
}

/// A permitting candidate, ranked.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RankedRow {
    /// 1 = best.
    pub rank: usize,
    /// Node id, MAC form.
    pub id: String,
    /// Name (empty if unknown).
    pub name: String,
    /// Where its answer came from.
    pub address: String,
    /// Weighted score, higher is better.
    pub score: u64,
    /// The normalised parts of the score.
    pub parts: PartsJson,
    /// Reported CPU load, permille.
    pub cpu_load_permille: u16,
    /// Reported free memory, MiB.
    pub free_mem_mib: u64,
    /// Reported CPU speed.
    pub cpu_speed: u32,
    /// Reported running jobs.
    pub running_jobs: u16,
    /// Measured round trip of its answer, microseconds.
    pub rtt_us: u64,
}

/// A candidate that denied.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeniedRow {
    /// Node id, MAC form.
    pub id: String,
    /// Name (empty if unknown).
    pub name: String,
    /// Why, in words.
    pub reason: String,
    /// Why, as the library's `DenyReason` variant (`Busy`, `NotEnoughMemory`,
    /// `Host`, `ShuttingDown`, `NotAccepting`).
    pub code: String,
}

/// A member by id and name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerRef {
    /// Node id, MAC form.
    pub id: String,
    /// Name (empty if unknown).
    pub name: String,
}

/// The outcome of `hostd place`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PlacementReport {
    /// The requester's placement number.
    pub placement: u32,
    /// `exclusive` or `balance`.
    pub mode: String,
    /// Memory asked for, MiB.
    pub memory_mib: u64,
    /// Program size, bytes (0 until `hostd submit`).
    pub program_size: u64,
    /// Weights used.
    pub weights: WeightsJson,
    /// Permitting candidates, best first.
    pub ranked: Vec<RankedRow>,
    /// Candidates that denied, in id order.
    pub denied: Vec<DeniedRow>,
    /// Candidates that did not answer in time.
    pub unanswered: Vec<PeerRef>,
}

impl PlacementReport {
    /// Number of candidates asked.
    pub fn asked(&self) -> usize {
        self.ranked.len() + self.denied.len() + self.unanswered.len()
    }
}

/// Lays out `rows` under `headers` in columns two spaces apart; columns whose
/// `right[i]` is true are right-aligned (numbers). Widths count characters.
pub fn render_table(headers: &[&str], right: &[bool], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let line = |cells: &mut dyn Iterator<Item = &str>, out: &mut String| {
        let mut l = String::new();
        for (i, cell) in cells.enumerate() {
            let w = widths.get(i).copied().unwrap_or(0);
            let pad = w.saturating_sub(cell.chars().count());
            if i > 0 {
                l.push_str("  ");
            }
            if right.get(i).copied().unwrap_or(false) {
                l.extend(std::iter::repeat_n(' ', pad));
                l.push_str(cell);
            } else {
                l.push_str(cell);
                l.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(&mut headers.iter().copied(), &mut out);
    for r in rows {
        line(&mut r.iter().map(String::as_str), &mut out);
    }
    out
}

/// `12.5%` from permille.
fn percent(permille: u16) -> String {
    format!("{}.{}%", permille / 10, permille % 10)
}

/// The group table of `hostd nodes`, e.g.
///
/// ```text
/// ID                 NAME              ROLE  ADDRESS      STATUS  CPU   FREE MiB  SPEED  JOBS  HEARD
/// 52:54:00:12:34:56  amber-otter-3456  node  169.254.3.4  alive   2.5%       480   1234     0  0.3s ago
/// ```
///
/// Hosts report no load (`-`); the producing host is marked `*`.
pub fn format_nodes(rows: &[NodeRow]) -> String {
    let headers = [
        "ID", "NAME", "ROLE", "ADDRESS", "STATUS", "CPU", "FREE MiB", "SPEED", "JOBS", "HEARD",
    ];
    let right = [
        false, false, false, false, false, true, true, true, true, false,
    ];
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let host = r.role == "host";
            let load = |s: String| if host { "-".to_string() } else { s };
            vec![
                if r.this_host {
                    format!("{} *", r.id)
                } else {
                    r.id.clone()
                },
                r.name.clone(),
                r.role.clone(),
                r.address.clone(),
                r.status.clone(),
                load(percent(r.cpu_load_permille)),
                load(r.free_mem_mib.to_string()),
                load(r.cpu_speed.to_string()),
                load(r.running_jobs.to_string()),
                if r.this_host {
                    "-".into()
                } else {
                    format!("{:.1}s ago", r.last_heard_s)
                },
            ]
        })
        .collect();
    render_table(&headers, &right, &cells)
}

/// One summary line under the group table: `3 nodes, 1 host (* = this host)`.
pub fn nodes_summary(report: &NodesReport) -> String {
    let nodes = report.node_count();
    let hosts = report.nodes.len() - nodes;
    let suspects = report
        .nodes
        .iter()
        .filter(|r| r.status == "suspect")
        .count();
    let plural = |n: usize, w: &str| format!("{n} {w}{}", if n == 1 { "" } else { "s" });
    let mut s = format!(
        "{}, {} (* = this host, on {} {}; {} after {:.1} s)",
        plural(nodes, "node"),
        plural(hosts, "host"),
        report.interface,
        report.address,
        report.via,
        report.listened_ms as f64 / 1000.0
    );
    if suspects > 0 {
        s.push_str(&format!("; {} suspect", suspects));
    }
    s
}

/// The ranking of `hostd place`: a header line, the ranked candidates best first
/// with score, parts and reported load, then denials and silent candidates.
pub fn format_placement(r: &PlacementReport) -> String {
    let w = r.weights;
    let mut out = format!(
        "placement #{}: {} mode, {} MiB wanted, weights cpu={},mem={},speed={},net={}; \
         {} asked, {} permitted, {} denied, {} silent\n",
        r.placement,
        r.mode,
        r.memory_mib,
        w.cpu,
        w.mem,
        w.speed,
        w.net,
        r.asked(),
        r.ranked.len(),
        r.denied.len(),
        r.unanswered.len()
    );
    if !r.ranked.is_empty() {
        out.push_str(
            "score = cpu*w.cpu + mem*w.mem + speed*w.speed + net*w.net, parts 0..1000 relative to the best answer\n",
        );
        let headers = [
            "RANK", "ID", "NAME", "ADDRESS", "SCORE", "cpu", "mem", "speed", "net", "LOAD",
            "FREE MiB", "SPEED", "JOBS", "RTT",
        ];
        let right = [
            true, false, false, false, true, true, true, true, true, true, true, true, true, true,
        ];
        let cells: Vec<Vec<String>> = r
            .ranked
            .iter()
            .map(|c| {
                vec![
                    c.rank.to_string(),
                    c.id.clone(),
                    c.name.clone(),
                    c.address.clone(),
                    c.score.to_string(),
                    c.parts.cpu.to_string(),
                    c.parts.mem.to_string(),
                    c.parts.speed.to_string(),
                    c.parts.net.to_string(),
                    percent(c.cpu_load_permille),
                    c.free_mem_mib.to_string(),
                    c.cpu_speed.to_string(),
                    c.running_jobs.to_string(),
                    format!("{:.2}ms", c.rtt_us as f64 / 1000.0),
                ]
            })
            .collect();
        out.push_str(&render_table(&headers, &right, &cells));
    }
    if !r.denied.is_empty() {
        out.push_str("denied:\n");
        let cells: Vec<Vec<String>> = r
            .denied
            .iter()
            .map(|d| vec![d.id.clone(), d.name.clone(), d.reason.clone()])
            .collect();
        for l in render_table(&["ID", "NAME", "REASON"], &[], &cells).lines() {
            out.push_str("  ");
            out.push_str(l);
            out.push('\n');
        }
    }
    if !r.unanswered.is_empty() {
        let list: Vec<String> = r
            .unanswered
            .iter()
            .map(|p| format!("{} {}", p.id, p.name).trim_end().to_string())
            .collect();
        out.push_str(&format!("no answer in time: {}\n", list.join(", ")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str, name: &str, role: &str, load: u16, heard: f64, me: bool) -> NodeRow {
        NodeRow {
            id: id.into(),
            name: name.into(),
            role: role.into(),
            address: "169.254.3.4".into(),
            status: if heard > 3.0 { "suspect" } else { "alive" }.into(),
            cpu_load_permille: load,
            free_mem_mib: 480,
            cpu_speed: 1234,
            running_jobs: 0,
            last_heard_s: heard,
            this_host: me,
        }
    }

    #[test]
    fn table_columns_line_up() {
        let rows = vec![
            row(
                "52:54:00:12:34:56",
                "amber-otter-3456",
                "node",
                25,
                0.3,
                false,
            ),
            row("52:54:00:12:34:57", "ノード", "node", 1000, 3.4, false),
            row("0a:00:00:00:00:01", "build-box", "host", 0, 0.0, true),
        ];
        let t = format_nodes(&rows);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 4, "{t}");
        assert!(lines[0].starts_with("ID "), "{t}");
        // Every column starts at the same character offset on every line.
        let col = |l: &str, needle: &str| {
            l.chars().count() - l[l.find(needle).unwrap()..].chars().count()
        };
        let name_at = col(lines[0], "NAME");
        assert_eq!(col(lines[1], "amber-otter-3456"), name_at);
        assert_eq!(col(lines[2], "ノード"), name_at);
        assert_eq!(col(lines[3], "build-box"), name_at);
        // Numbers right-aligned: the CPU column ends at the same offset.
        let end = |l: &str, needle: &str| col(l, needle) + needle.chars().count();
        assert_eq!(end(lines[0], "CPU"), end(lines[1], "2.5%"));
        assert_eq!(end(lines[0], "CPU"), end(lines[2], "100.0%"));
        assert!(lines[2].contains("suspect"));
        assert!(lines[1].ends_with("0.3s ago"), "{t}");
        // The host: marked, no load figures.
        assert!(lines[3].starts_with("0a:00:00:00:00:01 *"), "{t}");
        assert!(lines[3].contains("  host  "), "{t}");
        assert_eq!(lines[3].matches(" -").count(), 5, "{t}");
        assert!(!t.lines().any(|l| l.ends_with(' ')));
    }

    #[test]
    fn summary_counts_roles() {
        let rep = NodesReport {
            interface: "br0".into(),
            address: "169.254.0.1".into(),
            via: "discovery".into(),
            listened_ms: 1500,
            nodes: vec![
                row("a", "a", "node", 0, 0.1, false),
                row("b", "b", "node", 0, 4.0, false),
                row("c", "c", "host", 0, 0.0, true),
            ],
        };
        assert_eq!(rep.node_count(), 2);
        assert_eq!(
            nodes_summary(&rep),
            "2 nodes, 1 host (* = this host, on br0 169.254.0.1; discovery after 1.5 s); 1 suspect"
        );
    }

    fn placement() -> PlacementReport {
        PlacementReport {
            placement: 3,
            mode: "exclusive".into(),
            memory_mib: 64,
            program_size: 0,
            weights: Weights::default().into(),
            ranked: vec![
                RankedRow {
                    rank: 1,
                    id: "52:54:00:00:00:02".into(),
                    name: "fast".into(),
                    address: "169.254.0.2".into(),
                    score: 6000,
                    parts: PartsJson {
                        cpu: 0,
                        mem: 1000,
                        speed: 1000,
                        net: 1000,
                    },
                    cpu_load_permille: 1000,
                    free_mem_mib: 400,
                    cpu_speed: 2000,
                    running_jobs: 0,
                    rtt_us: 100,
                },
                RankedRow {
                    rank: 2,
                    id: "52:54:00:00:00:01".into(),
                    name: "slow".into(),
                    address: "169.254.0.3".into(),
                    score: 4750,
                    parts: PartsJson {
                        cpu: 750,
                        mem: 250,
                        speed: 250,
                        net: 500,
                    },
                    cpu_load_permille: 250,
                    free_mem_mib: 100,
                    cpu_speed: 500,
                    running_jobs: 0,
                    rtt_us: 200,
                },
            ],
            denied: vec![DeniedRow {
                id: "52:54:00:00:00:09".into(),
                name: "busy-one".into(),
                reason: "busy (exclusive mode, a job is running)".into(),
                code: "Busy".into(),
            }],
            unanswered: vec![PeerRef {
                id: "52:54:00:00:00:0a".into(),
                name: String::new(),
            }],
        }
    }

    #[test]
    fn placement_lists_best_first_with_parts_and_denials() {
        let r = placement();
        assert_eq!(r.asked(), 4);
        let t = format_placement(&r);
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[0].starts_with("placement #3: exclusive mode, 64 MiB wanted, weights cpu=4,mem=2,speed=3,net=1; 4 asked, 2 permitted, 1 denied, 1 silent"), "{t}");
        let header = lines.iter().position(|l| l.starts_with("RANK")).unwrap();
        assert!(
            lines[header + 1]
                .trim_start()
                .starts_with("1  52:54:00:00:00:02  fast"),
            "{t}"
        );
        assert!(lines[header + 1].contains("6000"));
        assert!(lines[header + 1].contains("0.10ms"));
        assert!(lines[header + 2].contains("4750"));
        let row: Vec<&str> = lines[header + 2].split_whitespace().collect();
        assert_eq!(&row[4..9], &["4750", "750", "250", "250", "500"], "{t}");
        assert!(t.contains("denied:\n  ID "), "{t}");
        assert!(
            t.contains("busy-one  busy (exclusive mode, a job is running)"),
            "{t}"
        );
        assert!(t.ends_with("no answer in time: 52:54:00:00:00:0a\n"), "{t}");
        // JSON round trip (the daemon sends this over its socket).
        let j = serde_json::to_string(&r).unwrap();
        assert_eq!(serde_json::from_str::<PlacementReport>(&j).unwrap(), r);
        assert!(
            j.contains(r#""weights":{"cpu":4,"mem":2,"speed":3,"net":1}"#),
            "{j}"
        );
    }

    #[test]
    fn empty_placement_says_so() {
        let mut r = placement();
        r.ranked.clear();
        r.denied.clear();
        r.unanswered.clear();
        let t = format_placement(&r);
        assert_eq!(t.lines().count(), 1, "{t}");
        assert!(t.contains("0 asked"));
    }
}
