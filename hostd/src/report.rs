//! What `hostd nodes` and `hostd place` print: the text tables of the typed
//! model ([`crate::model`]) and, in [`json`], the encoders that give the model
//! its JSON form (`--json` and the daemon's control socket). This is the only
//! module that turns ids, addresses, roles, statuses and modes into text.

use sion_companion_mgr::{Mode, Role, Status};

use crate::model::{GroupAuth, NodeRow, NodesReport, PlacementReport, Via};

/// `node` or `host`.
pub fn role_text(role: Role) -> &'static str {
    match role {
        Role::Node => "node",
        Role::Host => "host",
    }
}

/// `alive` or `suspect`.
pub fn status_text(status: Status) -> &'static str {
    match status {
        Status::Alive => "alive",
        Status::Suspect => "suspect",
    }
}

/// `daemon` or `discovery`.
pub fn via_text(via: Via) -> &'static str {
    match via {
        Via::Daemon => "daemon",
        Via::Discovery => "discovery",
    }
}

/// `exclusive` or `balance`.
pub fn mode_text(mode: Mode) -> &'static str {
    match mode {
        Mode::Exclusive => "exclusive",
        Mode::Balance => "balance",
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

/// A node for messages: `rapid-puffin-4e01 (52:54:00:53:4e:01, 169.254.10.99)`.
pub fn node_label(
    name: &str,
    id: sion_companion_mgr::NodeId,
    address: std::net::Ipv4Addr,
) -> String {
    format!("{name} ({id}, {address})")
}

/// `12.5%` from permille.
fn percent(permille: u16) -> String {
    format!("{}.{}%", permille / 10, permille % 10)
}

/// The group table of `hostd nodes`, e.g.
///
/// ```text
/// ID                 NAME              ROLE  ADDRESS      STATUS  CPU   CPUS  FREE MiB  SPEED  JOBS  HEARD
/// 52:54:00:12:34:56  amber-otter-3456  node  169.254.3.4  alive   2.5%   3/4       480   1234     1  0.3s ago
/// ```
///
/// `CPUS` is free/total: the processors no job holds and all of them
/// ([`cpus_text`]). Hosts report no load (`-`); the producing host is marked
/// `*`.
pub fn format_nodes(rows: &[NodeRow]) -> String {
    let headers = [
        "ID", "NAME", "ROLE", "ADDRESS", "STATUS", "CPU", "CPUS", "FREE MiB", "SPEED", "JOBS",
        "HEARD",
    ];
    let right = [
        false, false, false, false, false, true, true, true, true, true, false,
    ];
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let host = r.role == Role::Host;
            let load = |s: String| if host { "-".to_string() } else { s };
            vec![
                if r.this_host {
                    format!("{} *", r.id)
                } else {
                    r.id.to_string()
                },
                r.name.clone(),
                role_text(r.role).to_string(),
                r.address.to_string(),
                status_text(r.status).to_string(),
                load(percent(r.cpu_load_permille)),
                load(cpus_text(r.free_cpus, r.cpus)),
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

/// A node's CPUs as `free/total`, e.g. `3/4`; `?` when it reported no
/// count (a daemon older than CPU counts answered).
pub fn cpus_text(free: u8, total: u8) -> String {
    if total == 0 {
        "?".into()
    } else {
        format!("{free}/{total}")
    }
}

/// One summary line under the group table: `3 nodes, 1 host (* = this host)`.
pub fn nodes_summary(report: &NodesReport) -> String {
    let nodes = report.node_count();
    let hosts = report.nodes.len() - nodes;
    let suspects = report
        .nodes
        .iter()
        .filter(|r| r.status == Status::Suspect)
        .count();
    let plural = |n: usize, w: &str| format!("{n} {w}{}", if n == 1 { "" } else { "s" });
    let mut s = format!(
        "{}, {} (* = this host, on {} {}; {} after {:.1} s)",
        plural(nodes, "node"),
        plural(hosts, "host"),
        report.interface,
        report.address,
        via_text(report.via),
        report.listened_ms as f64 / 1000.0
    );
    if suspects > 0 {
        s.push_str(&format!("; {} suspect", suspects));
    }
    s
}

/// The line about the group's authentication under the group table:
/// `authenticated group (cluster key 1a2b3c4d); 3 unauthenticated datagrams
/// dropped (…)` or `OPEN group: …`.
pub fn group_line(g: &GroupAuth) -> String {
    match &g.key_id {
        Some(id) => {
            let mut s = format!("authenticated group (cluster key {id})");
            if g.dropped_unauthenticated > 0 {
                s.push_str(&format!(
                    "; {} unauthenticated datagrams dropped ({} unsealed, {} another key, {} bad tag, {} replayed)",
                    g.dropped_unauthenticated,
                    g.dropped_unsealed,
                    g.dropped_unknown_key,
                    g.dropped_bad_tag,
                    g.dropped_replayed
                ));
            }
            s
        }
        None => {
            let mut s = String::from(
                "OPEN group: no cluster key; anyone on the LAN can join and submit (hostd keygen, then sion-image --key)",
            );
            if g.sealed_unopened > 0 {
                s.push_str(&format!(
                    "; heard {} datagrams of an authenticated group",
                    g.sealed_unopened
                ));
            }
            s
        }
    }
}

/// Advice when the cluster-key counters explain why no node was heard:
/// sealed datagrams and no key, datagrams sealed with another key, or
/// unsealed ones refused. `None` when they show nothing of the kind.
pub fn key_hint(g: &GroupAuth) -> Option<String> {
    match &g.key_id {
        None if g.sealed_unopened > 0 => Some(format!(
            "heard {} datagrams sealed with a cluster key: the nodes run an authenticated group and this hostd has no key \
             (put the group's key in ~/.config/sion/cluster.key or pass --key FILE)",
            g.sealed_unopened
        )),
        None => None,
        Some(id) if g.dropped_unknown_key + g.dropped_bad_tag > 0 => Some(format!(
            "heard {} datagrams sealed with another cluster key than this hostd's ({id}): its key is probably wrong (--key FILE)",
            g.dropped_unknown_key + g.dropped_bad_tag
        )),
        Some(id) if g.dropped_unsealed > 0 => Some(format!(
            "heard {} datagrams without a cluster key: the nodes run an open group (an image built without --key) \
             while this hostd has key {id} (--key none speaks to an open group)",
            g.dropped_unsealed
        )),
        Some(_) => None,
    }
}

/// The ranking of `hostd place`: a header line, the ranked candidates best first
/// with score, parts and reported load, then denials and silent candidates.
pub fn format_placement(r: &PlacementReport) -> String {
    let w = r.weights;
    let mut out = format!(
        "placement #{}: {} mode, {} MiB and {} CPU{} wanted, weights cpu={},mem={},speed={},net={}; \
         {} asked, {} permitted, {} denied, {} silent\n",
        r.placement,
        mode_text(r.mode),
        r.memory_mib,
        r.cpus,
        if r.cpus == 1 { "" } else { "s" },
        w.cpu_load,
        w.free_mem,
        w.cpu_speed,
        w.network,
        r.asked(),
        r.ranked.len(),
        r.denied.len(),
        r.unanswered.len()
    );
    if !r.ranked.is_empty() {
        out.push_str(
            "score = cpu*w.cpu + mem*w.mem + speed*w.speed + net*w.net, parts 0..1000 relative to the best answer \
             (cpu: idle share scaled by free CPUs)\n",
        );
        let headers = [
            "RANK", "ID", "NAME", "ADDRESS", "SCORE", "cpu", "mem", "speed", "net", "LOAD", "CPUS",
            "FREE MiB", "SPEED", "JOBS", "RTT",
        ];
        let right = [
            true, false, false, false, true, true, true, true, true, true, true, true, true, true,
            true,
        ];
        let cells: Vec<Vec<String>> = r
            .ranked
            .iter()
            .map(|c| {
                vec![
                    c.rank.to_string(),
                    c.id.to_string(),
                    c.name.clone(),
                    c.address.to_string(),
                    c.score.to_string(),
                    c.parts.cpu_load.to_string(),
                    c.parts.free_mem.to_string(),
                    c.parts.cpu_speed.to_string(),
                    c.parts.network.to_string(),
                    percent(c.cpu_load_permille),
                    cpus_text(c.free_cpus, c.cpus),
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
            .map(|d| vec![d.id.to_string(), d.name.clone(), d.reason.to_string()])
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

/// The JSON form of the model: `serde(with = …)` encoders for its typed
/// fields, so that `--json` and the control socket show ids in MAC form,
/// addresses dotted, and roles, statuses, modes and reasons as lower-case words
/// (denial codes as the [`DenyReason`](sion_companion_mgr::DenyReason)
/// variant's name). Decoding is strict: an unknown word or a malformed id is an
/// error.
pub mod json {
    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use sion_companion_mgr::{DenyReason, NodeId, ScoreParts, Weights};

    use crate::model::{DeniedRow, parse_node_id};

    /// Encodes a value as one of a fixed set of words and decodes it back.
    fn word<S: Serializer>(s: S, w: &str) -> Result<S::Ok, S::Error> {
        s.serialize_str(w)
    }

    fn from_words<'de, D: Deserializer<'de>, T: Copy>(
        d: D,
        what: &str,
        table: &[(&str, T)],
    ) -> Result<T, D::Error> {
        let text = String::deserialize(d)?;
        table
            .iter()
            .find(|(w, _)| *w == text)
            .map(|&(_, v)| v)
            .ok_or_else(|| D::Error::custom(format!("unknown {what} `{text}`")))
    }

    /// A [`NodeId`] as `52:54:00:12:34:56`.
    pub mod node_id {
        use super::*;

        /// Serialises `id` in MAC form.
        ///
        /// # Errors
        /// The serializer's.
        pub fn serialize<S: Serializer>(id: &NodeId, s: S) -> Result<S::Ok, S::Error> {
            s.collect_str(id)
        }

        /// Parses the MAC form.
        ///
        /// # Errors
        /// Not a string of six two-digit hex bytes separated by `:`.
        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<NodeId, D::Error> {
            let text = String::deserialize(d)?;
            parse_node_id(&text).ok_or_else(|| D::Error::custom(format!("bad node id `{text}`")))
        }
    }

    /// A [`Role`](sion_companion_mgr::Role) as `node` or `host`.
    pub mod role {
        use super::*;
        use sion_companion_mgr::Role;

        /// Serialises `r` as a word.
        ///
        /// # Errors
        /// The serializer's.
        pub fn serialize<S: Serializer>(r: &Role, s: S) -> Result<S::Ok, S::Error> {
            word(s, crate::report::role_text(*r))
        }

        /// Parses `node` or `host`.
        ///
        /// # Errors
        /// Any other word.
        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Role, D::Error> {
            from_words(d, "role", &[("node", Role::Node), ("host", Role::Host)])
        }
    }

    /// A [`Status`](sion_companion_mgr::Status) as `alive` or `suspect`.
    pub mod status {
        use super::*;
        use sion_companion_mgr::Status;

        /// Serialises `st` as a word.
        ///
        /// # Errors
        /// The serializer's.
        pub fn serialize<S: Serializer>(st: &Status, s: S) -> Result<S::Ok, S::Error> {
            word(s, crate::report::status_text(*st))
        }

        /// Parses `alive` or `suspect`.
        ///
        /// # Errors
        /// Any other word.
        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Status, D::Error> {
            from_words(
                d,
                "status",
                &[("alive", Status::Alive), ("suspect", Status::Suspect)],
            )
        }
    }

    /// A [`Via`](crate::model::Via) as `daemon` or `discovery`.
    pub mod via {
        use super::*;
        use crate::model::Via;

        /// Serialises `v` as a word.
        ///
        /// # Errors
        /// The serializer's.
        pub fn serialize<S: Serializer>(v: &Via, s: S) -> Result<S::Ok, S::Error> {
            word(s, crate::report::via_text(*v))
        }

        /// Parses `daemon` or `discovery`.
        ///
        /// # Errors
        /// Any other word.
        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Via, D::Error> {
            from_words(
                d,
                "source",
                &[("daemon", Via::Daemon), ("discovery", Via::Discovery)],
            )
        }
    }

    /// A [`Mode`](sion_companion_mgr::Mode) as `exclusive` or `balance`.
    pub mod mode {
        use super::*;
        use sion_companion_mgr::Mode;

        /// Serialises `m` as a word.
        ///
        /// # Errors
        /// The serializer's.
        pub fn serialize<S: Serializer>(m: &Mode, s: S) -> Result<S::Ok, S::Error> {
            word(s, crate::report::mode_text(*m))
        }

        /// Parses `exclusive` or `balance`.
        ///
        /// # Errors
        /// Any other word.
        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Mode, D::Error> {
            from_words(
                d,
                "mode",
                &[("exclusive", Mode::Exclusive), ("balance", Mode::Balance)],
            )
        }
    }

    /// Four permille or weight figures under the names of `--weights`.
    #[derive(Serialize, Deserialize)]
    struct Four {
        cpu: u16,
        mem: u16,
        speed: u16,
        net: u16,
    }

    /// [`Weights`] as `{"cpu":4,"mem":2,"speed":3,"net":1}`.
    pub mod weights {
        use super::*;

        /// Serialises `w` under the names of `--weights`.
        ///
        /// # Errors
        /// The serializer's.
        pub fn serialize<S: Serializer>(w: &Weights, s: S) -> Result<S::Ok, S::Error> {
            Four {
                cpu: w.cpu_load,
                mem: w.free_mem,
                speed: w.cpu_speed,
                net: w.network,
            }
            .serialize(s)
        }

        /// Parses the four weights.
        ///
        /// # Errors
        /// A missing field or a number out of `u16`.
        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Weights, D::Error> {
            let f = Four::deserialize(d)?;
            Ok(Weights {
                cpu_load: f.cpu,
                free_mem: f.mem,
                cpu_speed: f.speed,
                network: f.net,
            })
        }
    }

    /// [`ScoreParts`] as `{"cpu":…,"mem":…,"speed":…,"net":…}`, each 0..=1000.
    pub mod parts {
        use super::*;

        /// Serialises `p` under the names of `--weights`.
        ///
        /// # Errors
        /// The serializer's.
        pub fn serialize<S: Serializer>(p: &ScoreParts, s: S) -> Result<S::Ok, S::Error> {
            Four {
                cpu: p.cpu_load,
                mem: p.free_mem,
                speed: p.cpu_speed,
                net: p.network,
            }
            .serialize(s)
        }

        /// Parses the four parts.
        ///
        /// # Errors
        /// A missing field or a number out of `u16`.
        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<ScoreParts, D::Error> {
            let f = Four::deserialize(d)?;
            Ok(ScoreParts {
                cpu_load: f.cpu,
                free_mem: f.mem,
                cpu_speed: f.speed,
                network: f.net,
            })
        }
    }

    /// Every [`DenyReason`] with its JSON `code`: the variant's name (its
    /// `Debug` form, which encoding uses).
    pub(crate) const DENY_CODES: [(&str, DenyReason); 8] = [
        ("Busy", DenyReason::Busy),
        ("NotEnoughMemory", DenyReason::NotEnoughMemory),
        ("Host", DenyReason::Host),
        ("ShuttingDown", DenyReason::ShuttingDown),
        ("NotAccepting", DenyReason::NotAccepting),
        ("Reserved", DenyReason::Reserved),
        ("TooFewCpus", DenyReason::TooFewCpus),
        ("NoFreeCpus", DenyReason::NoFreeCpus),
    ];

    /// The JSON form of a [`DeniedRow`]: the reason twice, in words
    /// (`reason`, the library's `Display`) and as the variant's name (`code`).
    #[derive(Clone, Debug, Serialize, Deserialize)]
    pub struct DeniedJson {
        /// Node id, MAC form.
        #[serde(with = "node_id")]
        pub id: NodeId,
        /// Name (empty if unknown).
        pub name: String,
        /// Why, in words (ignored when decoding: `code` says it).
        pub reason: String,
        /// Why, as the [`DenyReason`] variant's name (`Busy`,
        /// `NotEnoughMemory`, `Host`, `ShuttingDown`, `NotAccepting`, `Reserved`,
        /// `TooFewCpus`, `NoFreeCpus`).
        pub code: String,
    }

    impl From<DeniedRow> for DeniedJson {
        fn from(d: DeniedRow) -> DeniedJson {
            DeniedJson {
                id: d.id,
                name: d.name,
                reason: d.reason.to_string(),
                code: format!("{:?}", d.reason),
            }
        }
    }

    impl TryFrom<DeniedJson> for DeniedRow {
        type Error = String;

        fn try_from(j: DeniedJson) -> Result<DeniedRow, String> {
            let reason = DENY_CODES
                .iter()
                .find(|(c, _)| *c == j.code)
                .map(|&(_, r)| r)
                .ok_or_else(|| format!("unknown denial code `{}`", j.code))?;
            Ok(DeniedRow {
                id: j.id,
                name: j.name,
                reason,
            })
        }
    }
}

/// `hostd jobs`' table: one row per job, then the nodes that did not answer.
pub fn format_jobs(report: &crate::jobs::JobsReport) -> String {
    let mut out = String::new();
    if report.jobs.is_empty() {
        out.push_str("no jobs on the group's nodes\n");
    } else {
        out.push_str(&format!(
            "{:<24} {:<10} {:>10}  {:<20} {}\n",
            "ID", "STATE", "ELAPSED", "FROM", "COMMAND"
        ));
        for j in &report.jobs {
            let state = match (j.state.as_str(), j.status) {
                ("exited", Some(s)) => format!("exit {}", sion_app_mgr::job::shell_status(s)),
                (st, _) => st.to_string(),
            };
            out.push_str(&format!(
                "{:<24} {:<10} {:>9.1}s  {:<20} {}\n",
                j.id,
                state,
                j.elapsed_ms as f64 / 1000.0,
                j.from,
                j.program
            ));
        }
    }
    for (node, why) in &report.unreachable {
        out.push_str(&format!("node {node} did not answer: {why}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{DeniedRow, PeerRef, RankedRow, parse_node_id};
    use sion_companion_mgr::{DenyReason, ScoreParts, Weights};
    use std::net::Ipv4Addr;

    fn id(s: &str) -> sion_companion_mgr::NodeId {
        parse_node_id(s).unwrap()
    }

    fn row(mac: &str, name: &str, role: Role, load: u16, heard: f64, me: bool) -> NodeRow {
        NodeRow {
            id: id(mac),
            name: name.into(),
            role,
            address: Ipv4Addr::new(169, 254, 3, 4),
            status: if heard > 3.0 {
                Status::Suspect
            } else {
                Status::Alive
            },
            cpu_load_permille: load,
            free_mem_mib: 480,
            cpu_speed: 1234,
            running_jobs: 1,
            cpus: if role == Role::Host { 0 } else { 4 },
            free_cpus: if role == Role::Host { 0 } else { 3 },
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
                Role::Node,
                25,
                0.3,
                false,
            ),
            row("52:54:00:12:34:57", "ノード", Role::Node, 1000, 3.4, false),
            row("0a:00:00:00:00:01", "build-box", Role::Host, 0, 0.0, true),
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
        // CPUs free/total, right-aligned under their header.
        assert_eq!(end(lines[0], "CPUS"), end(lines[1], "3/4"));
        assert_eq!(end(lines[0], "CPUS"), end(lines[2], "3/4"));
        assert!(lines[2].contains("suspect"));
        assert!(lines[1].ends_with("0.3s ago"), "{t}");
        // The host: marked, no load figures.
        assert!(lines[3].starts_with("0a:00:00:00:00:01 *"), "{t}");
        assert!(lines[3].contains("  host  "), "{t}");
        assert_eq!(lines[3].matches(" -").count(), 6, "{t}");
        assert_eq!(cpus_text(0, 0), "?", "a node's count unknown");
        assert_eq!(cpus_text(0, 2), "0/2");
        assert!(!t.lines().any(|l| l.ends_with(' ')));
    }

    #[test]
    fn group_line_and_key_hints() {
        let open = GroupAuth::default();
        assert!(group_line(&open).starts_with("OPEN group"));
        assert_eq!(key_hint(&open), None);
        let open_near_keyed = GroupAuth {
            sealed_unopened: 4,
            ..GroupAuth::default()
        };
        let h = key_hint(&open_near_keyed).unwrap();
        assert!(h.contains("has no key") && h.contains("--key"), "{h}");
        let wrong = GroupAuth {
            key_id: Some("1a2b3c4d".into()),
            dropped_unauthenticated: 2,
            dropped_unknown_key: 2,
            ..GroupAuth::default()
        };
        let h = key_hint(&wrong).unwrap();
        assert!(
            h.contains("probably wrong") && h.contains("1a2b3c4d"),
            "{h}"
        );
        let l = group_line(&wrong);
        assert!(
            l.starts_with("authenticated group (cluster key 1a2b3c4d); 2 unauthenticated"),
            "{l}"
        );
        let keyed_near_open = GroupAuth {
            key_id: Some("1a2b3c4d".into()),
            dropped_unauthenticated: 5,
            dropped_unsealed: 5,
            ..GroupAuth::default()
        };
        assert!(key_hint(&keyed_near_open).unwrap().contains("open group"));
        let fine = GroupAuth {
            key_id: Some("1a2b3c4d".into()),
            ..GroupAuth::default()
        };
        assert_eq!(key_hint(&fine), None);
        assert_eq!(
            group_line(&fine),
            "authenticated group (cluster key 1a2b3c4d)"
        );
    }

    #[test]
    fn summary_counts_roles() {
        let rep = NodesReport {
            interface: "br0".into(),
            address: Ipv4Addr::new(169, 254, 0, 1),
            via: Via::Discovery,
            listened_ms: 1500,
            nodes: vec![
                row("00:00:00:00:00:0a", "a", Role::Node, 0, 0.1, false),
                row("00:00:00:00:00:0b", "b", Role::Node, 0, 4.0, false),
                row("00:00:00:00:00:0c", "c", Role::Host, 0, 0.0, true),
            ],
            group: GroupAuth::default(),
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
            mode: Mode::Exclusive,
            memory_mib: 64,
            cpus: 1,
            program_size: 0,
            weights: Weights::default(),
            ranked: vec![
                RankedRow {
                    rank: 1,
                    id: id("52:54:00:00:00:02"),
                    name: "fast".into(),
                    address: Ipv4Addr::new(169, 254, 0, 2),
                    score: 6000,
                    parts: ScoreParts {
                        cpu_load: 0,
                        free_mem: 1000,
                        cpu_speed: 1000,
                        network: 1000,
                    },
                    cpu_load_permille: 1000,
                    free_mem_mib: 400,
                    cpu_speed: 2000,
                    running_jobs: 0,
                    cpus: 2,
                    free_cpus: 2,
                    rtt_us: 100,
                },
                RankedRow {
                    rank: 2,
                    id: id("52:54:00:00:00:01"),
                    name: "slow".into(),
                    address: Ipv4Addr::new(169, 254, 0, 3),
                    score: 4750,
                    parts: ScoreParts {
                        cpu_load: 750,
                        free_mem: 250,
                        cpu_speed: 250,
                        network: 500,
                    },
                    cpu_load_permille: 250,
                    free_mem_mib: 100,
                    cpu_speed: 500,
                    running_jobs: 0,
                    cpus: 1,
                    free_cpus: 1,
                    rtt_us: 200,
                },
            ],
            denied: vec![DeniedRow {
                id: id("52:54:00:00:00:09"),
                name: "busy-one".into(),
                reason: DenyReason::Busy,
            }],
            unanswered: vec![PeerRef {
                id: id("52:54:00:00:00:0a"),
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
        assert!(lines[0].starts_with("placement #3: exclusive mode, 64 MiB and 1 CPU wanted, weights cpu=4,mem=2,speed=3,net=1; 4 asked, 2 permitted, 1 denied, 1 silent"), "{t}");
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
        assert_eq!(row[10], "1/1", "{t}");
        assert!(lines[header].contains(" CPUS "), "{t}");
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

/// The JSON of `hostd nodes --json` and `hostd place --json` (and of the
/// control socket), pinned byte for byte: scripts and the QEMU tests parse it.
#[cfg(test)]
mod json_shape {
    use std::net::Ipv4Addr;

    use sion_companion_mgr::{DenyReason, Mode, Role, ScoreParts, Status, Weights};

    use crate::model::{
        DeniedRow, GroupAuth, NodeRow, NodesReport, PeerRef, PlacementReport, RankedRow, Via,
        parse_node_id,
    };

    const NODES: &str = r#"{"interface":"br0","address":"169.254.0.1","via":"discovery","listened_ms":1500,"nodes":[{"id":"52:54:00:12:34:56","name":"amber-otter-3456","role":"node","address":"169.254.3.4","status":"suspect","cpu_load_permille":25,"free_mem_mib":480,"cpu_speed":1234,"running_jobs":1,"cpus":2,"free_cpus":1,"last_heard_s":3.4,"this_host":false},{"id":"0a:00:00:00:00:01","name":"pc","role":"host","address":"169.254.0.1","status":"alive","cpu_load_permille":0,"free_mem_mib":0,"cpu_speed":0,"running_jobs":0,"cpus":0,"free_cpus":0,"last_heard_s":0.0,"this_host":true}],"group":{"key_id":"1a2b3c4d","dropped_unauthenticated":3,"dropped_unsealed":1,"dropped_unknown_key":1,"dropped_bad_tag":0,"dropped_replayed":1,"sealed_unopened":0}}"#;

    const PLACE: &str = r#"{"placement":3,"mode":"balance","memory_mib":64,"cpus":2,"program_size":10,"weights":{"cpu":4,"mem":2,"speed":3,"net":1},"ranked":[{"rank":1,"id":"52:54:00:00:00:02","name":"fast","address":"169.254.0.2","score":6000,"parts":{"cpu":1,"mem":2,"speed":3,"net":4},"cpu_load_permille":1000,"free_mem_mib":400,"cpu_speed":2000,"running_jobs":0,"cpus":4,"free_cpus":4,"rtt_us":100}],"denied":[{"id":"52:54:00:00:00:09","name":"busy-one","reason":"not enough free memory","code":"NotEnoughMemory"}],"unanswered":[{"id":"52:54:00:00:00:0a","name":""}]}"#;

    fn nodes() -> NodesReport {
        NodesReport {
            interface: "br0".into(),
            address: Ipv4Addr::new(169, 254, 0, 1),
            via: Via::Discovery,
            listened_ms: 1500,
            nodes: vec![
                NodeRow {
                    id: parse_node_id("52:54:00:12:34:56").unwrap(),
                    name: "amber-otter-3456".into(),
                    role: Role::Node,
                    address: Ipv4Addr::new(169, 254, 3, 4),
                    status: Status::Suspect,
                    cpu_load_permille: 25,
                    free_mem_mib: 480,
                    cpu_speed: 1234,
                    running_jobs: 1,
                    cpus: 2,
                    free_cpus: 1,
                    last_heard_s: 3.4,
                    this_host: false,
                },
                NodeRow {
                    id: parse_node_id("0a:00:00:00:00:01").unwrap(),
                    name: "pc".into(),
                    role: Role::Host,
                    address: Ipv4Addr::new(169, 254, 0, 1),
                    status: Status::Alive,
                    cpu_load_permille: 0,
                    free_mem_mib: 0,
                    cpu_speed: 0,
                    running_jobs: 0,
                    cpus: 0,
                    free_cpus: 0,
                    last_heard_s: 0.0,
                    this_host: true,
                },
            ],
            group: GroupAuth {
                key_id: Some("1a2b3c4d".into()),
                dropped_unauthenticated: 3,
                dropped_unsealed: 1,
                dropped_unknown_key: 1,
                dropped_bad_tag: 0,
                dropped_replayed: 1,
                sealed_unopened: 0,
            },
        }
    }

    fn placement() -> PlacementReport {
        PlacementReport {
            placement: 3,
            mode: Mode::Balance,
            memory_mib: 64,
            cpus: 2,
            program_size: 10,
            weights: Weights::default(),
            ranked: vec![RankedRow {
                rank: 1,
                id: parse_node_id("52:54:00:00:00:02").unwrap(),
                name: "fast".into(),
                address: Ipv4Addr::new(169, 254, 0, 2),
                score: 6000,
                parts: ScoreParts {
                    cpu_load: 1,
                    free_mem: 2,
                    cpu_speed: 3,
                    network: 4,
                },
                cpu_load_permille: 1000,
                free_mem_mib: 400,
                cpu_speed: 2000,
                running_jobs: 0,
                cpus: 4,
                free_cpus: 4,
                rtt_us: 100,
            }],
            denied: vec![DeniedRow {
                id: parse_node_id("52:54:00:00:00:09").unwrap(),
                name: "busy-one".into(),
                reason: DenyReason::NotEnoughMemory,
            }],
            unanswered: vec![PeerRef {
                id: parse_node_id("52:54:00:00:00:0a").unwrap(),
                name: String::new(),
            }],
        }
    }

    #[test]
    fn nodes_json_is_pinned_and_round_trips() {
        assert_eq!(serde_json::to_string(&nodes()).unwrap(), NODES);
        assert_eq!(serde_json::from_str::<NodesReport>(NODES).unwrap(), nodes());
    }

    #[test]
    fn placement_json_is_pinned_and_round_trips() {
        assert_eq!(serde_json::to_string(&placement()).unwrap(), PLACE);
        assert_eq!(
            serde_json::from_str::<PlacementReport>(PLACE).unwrap(),
            placement()
        );
    }

    #[test]
    fn json_of_daemons_older_than_cpu_counts_still_reads() {
        let old_nodes = NODES
            .replace(r#""cpus":2,"free_cpus":1,"#, "")
            .replace(r#""cpus":0,"free_cpus":0,"#, "");
        assert!(!old_nodes.contains("cpus"));
        let n = serde_json::from_str::<NodesReport>(&old_nodes).unwrap();
        assert_eq!((n.nodes[0].cpus, n.nodes[0].free_cpus), (0, 0));
        let old_place = PLACE
            .replace(r#""cpus":2,"#, "")
            .replace(r#""cpus":4,"free_cpus":4,"#, "");
        assert!(!old_place.contains("cpus"));
        let p = serde_json::from_str::<PlacementReport>(&old_place).unwrap();
        assert_eq!(p.cpus, 1, "a job of an older daemon asked for one CPU");
        assert_eq!(p.ranked[0].cpus, 0);
    }

    #[test]
    fn every_denial_code_round_trips() {
        for (code, reason) in super::json::DENY_CODES {
            assert_eq!(format!("{reason:?}"), code);
            let mut p = placement();
            p.denied[0].reason = reason;
            let j = serde_json::to_string(&p).unwrap();
            assert!(j.contains(&format!(r#""code":"{code}""#)), "{j}");
            assert!(j.contains(&format!(r#""reason":"{reason}""#)), "{j}");
            assert_eq!(serde_json::from_str::<PlacementReport>(&j).unwrap(), p);
        }
    }

    #[test]
    fn unknown_words_and_bad_ids_are_refused() {
        for (from, to) in [
            (r#""role":"node""#, r#""role":"Node""#),
            (r#""status":"suspect""#, r#""status":"dead""#),
            (r#""via":"discovery""#, r#""via":"guess""#),
            (r#""id":"52:54:00:12:34:56""#, r#""id":"52:54:00:12:34""#),
            (r#""address":"169.254.3.4""#, r#""address":"169.254.3""#),
        ] {
            let bad = NODES.replacen(from, to, 1);
            assert_ne!(bad, NODES, "{from}");
            assert!(serde_json::from_str::<NodesReport>(&bad).is_err(), "{to}");
        }
        for (from, to) in [
            (r#""mode":"balance""#, r#""mode":"Balance""#),
            (r#""code":"NotEnoughMemory""#, r#""code":"Tired""#),
        ] {
            let bad = PLACE.replacen(from, to, 1);
            assert_ne!(bad, PLACE, "{from}");
            assert!(
                serde_json::from_str::<PlacementReport>(&bad).is_err(),
                "{to}"
            );
        }
    }
}
