//! Placement: the job description, the candidate's permit/deny rule and the requester's
//! weighted score (SiON paper §3.2.2 and §4.2.1, Fig. 5 c; remote-process paper §3.3.6).
//!
//! The requester ([`Member::start_placement`](crate::Member::start_placement)) asks up
//! to k candidates with a task request; each candidate answers with [`decide`]'s
//! verdict and its current [`NodeState`]; the requester measures each answer's round
//! trip and ranks the permitting candidates with [`rank`].

use alloc::vec::Vec;
use core::cmp::Ordering;
use core::fmt;
use core::time::Duration;

use serde::{Deserialize, Serialize};

use crate::node::{Addr, MAX_CPU_LOAD, NodeId, NodeState, Role};

/// How a job shares a node, after the remote-process paper's two distribution modes
/// (§3.3.6).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Mode {
    /// One job per node ("parallel program mode"): a candidate that already runs a job
    /// denies with [`DenyReason::Busy`]. The SiON paper's rule (§3.2.3: the application
    /// runs as a single task to completion).
    #[default]
    Exclusive,
    /// Load balancing: a busy candidate still permits; the requester takes the best
    /// node even if busy and the job waits there behind the running one.
    Balance,
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Exclusive => "exclusive",
            Mode::Balance => "balance",
        })
    }
}

/// What the requester wants to run: sent in every task request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct JobSpec {
    /// Size of the program file to upload, in bytes.
    pub program_size: u64,
    /// Memory the job wants besides its program image, in bytes (heap, stack, data).
    pub memory: u64,
    /// Exclusive or balance.
    pub mode: Mode,
}

impl JobSpec {
    /// Bytes the job needs on the node: `program_size + memory` (saturating).
    pub const fn needed_memory(&self) -> u64 {
        self.program_size.saturating_add(self.memory)
    }
}

/// Why a candidate refused a task request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DenyReason {
    /// Exclusive mode and the node already runs a job.
    Busy,
    /// `program_size + memory` exceeds the node's free memory.
    NotEnoughMemory,
    /// The member is a [`Role::Host`]: hosts never run jobs.
    Host,
    /// The member is leaving the group.
    ShuttingDown,
    /// The node's driver switched job acceptance off
    /// ([`Member::set_accepting`](crate::Member::set_accepting)), e.g. no App-Program
    /// Manager is running.
    NotAccepting,
    /// The node permitted another requester's exclusive job a moment ago and is
    /// held for it (a reservation, [`Config::reservation_lease`](crate::Config::reservation_lease))
    /// until that job starts, the requester releases it
    /// ([`Message::TaskRelease`](crate::Message::TaskRelease)) or the lease ends.
    Reserved,
}

impl fmt::Display for DenyReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DenyReason::Busy => "busy (exclusive mode, a job is running)",
            DenyReason::NotEnoughMemory => "not enough free memory",
            DenyReason::Host => "a host never runs jobs",
            DenyReason::ShuttingDown => "leaving the group",
            DenyReason::NotAccepting => "not accepting jobs",
            DenyReason::Reserved => "held for another requester's exclusive job",
        })
    }
}

/// A candidate's answer to a task request (SiON paper §3.2.2: "permit" or "deny",
/// sent with the candidate's load).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Verdict {
    /// The candidate can take the job now (or, in balance mode, queue it).
    Permit,
    /// The candidate refuses, for this reason.
    Deny(DenyReason),
}

/// The candidate-side rule: may a member with this `role` and `state` take `job`?
///
/// In order: a host denies ([`DenyReason::Host`]); a leaving member denies
/// ([`DenyReason::ShuttingDown`]); a member whose driver switched acceptance off
/// denies ([`DenyReason::NotAccepting`]); a job needing more than `state.free_mem`
/// bytes ([`JobSpec::needed_memory`]) is denied ([`DenyReason::NotEnoughMemory`], in
/// both modes: a waiting job must fit beside the running one); in
/// [`Mode::Exclusive`] a node with `running_jobs > 0` denies ([`DenyReason::Busy`]).
/// Otherwise permit. This rule sees only the node's state; the reservation that
/// makes an exclusive permit hold the node for its requester is kept by the
/// [`Member`](crate::Member) ([`DenyReason::Reserved`]).
pub fn decide(
    role: Role,
    leaving: bool,
    accepting: bool,
    state: &NodeState,
    job: &JobSpec,
) -> Verdict {
    let deny = if role == Role::Host {
        Some(DenyReason::Host)
    } else if leaving {
        Some(DenyReason::ShuttingDown)
    } else if !accepting {
        Some(DenyReason::NotAccepting)
    } else if job.needed_memory() > state.free_mem {
        Some(DenyReason::NotEnoughMemory)
    } else if job.mode == Mode::Exclusive && state.running_jobs > 0 {
        Some(DenyReason::Busy)
    } else {
        None
    };
    match deny {
        Some(r) => Verdict::Deny(r),
        None => Verdict::Permit,
    }
}

/// The user's weights for the placement score (SiON paper §4.2.1: "weighted sum of CPU
/// load, free memory, CPU speed and network speed; the user may give the weights").
///
/// Each weight multiplies a part normalised to `0..=1000` (see [`ScoreParts`]); only
/// ratios between weights matter. The defaults, `cpu_load: 4, free_mem: 2,
/// cpu_speed: 3, network: 1`, favour an idle, fast CPU for SiON's compute jobs, count
/// memory less (the candidate already checked that the job fits) and network least
/// (it matters only for the upload and remote file I/O).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Weights {
    /// Weight of the idle CPU fraction (lower load scores higher).
    pub cpu_load: u16,
    /// Weight of free memory (more scores higher).
    pub free_mem: u16,
    /// Weight of CPU speed (faster scores higher).
    pub cpu_speed: u16,
    /// Weight of network speed, measured as the answer's round trip (shorter scores
    /// higher).
    pub network: u16,
}

impl Default for Weights {
    fn default() -> Weights {
        Weights {
            cpu_load: 4,
            free_mem: 2,
            cpu_speed: 3,
            network: 1,
        }
    }
}

/// Largest value of each normalised part in [`ScoreParts`].
pub const PART_MAX: u16 = 1000;

/// Round trips shorter than this are counted as this long when computing
/// [`ScoreParts::network`] (below it the measurement is noise).
pub const RTT_FLOOR: Duration = Duration::from_micros(1);

/// A permitting candidate's normalised metrics, each in `0..=`[`PART_MAX`], higher is
/// better, relative to the other permitting candidates of the same placement:
///
/// - `cpu_load = 1000 - load` (the idle permille; absolute, since load is bounded);
/// - `free_mem = 1000 * free_mem / max(free_mem)`;
/// - `cpu_speed = 1000 * cpu_speed / max(cpu_speed)`;
/// - `network = 1000 * min(rtt) / rtt`, round trips floored at [`RTT_FLOOR`].
///
/// Maxima and minima run over the permitting candidates; a part whose maximum is 0 is
/// 0 for everyone. Divisions round down.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ScoreParts {
    /// Idle CPU, permille.
    pub cpu_load: u16,
    /// Free memory relative to the best candidate, permille.
    pub free_mem: u16,
    /// CPU speed relative to the fastest candidate, permille.
    pub cpu_speed: u16,
    /// Network speed (inverse round trip) relative to the fastest answer, permille.
    pub network: u16,
}

impl ScoreParts {
    /// `Σ weight × part`: at most `4 × 65535 × 1000`.
    pub fn score(&self, w: &Weights) -> u64 {
        u64::from(w.cpu_load) * u64::from(self.cpu_load)
            + u64::from(w.free_mem) * u64::from(self.free_mem)
            + u64::from(w.cpu_speed) * u64::from(self.cpu_speed)
            + u64::from(w.network) * u64::from(self.network)
    }
}

/// One candidate's answer as the requester saw it: the input of [`rank`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Answer {
    /// The candidate.
    pub node: NodeId,
    /// Where its answer came from (where to send the job).
    pub addr: Addr,
    /// Permit or deny.
    pub verdict: Verdict,
    /// The load it reported with the answer.
    pub state: NodeState,
    /// Time from sending the task request to receiving this answer.
    pub rtt: Duration,
}

/// A permitting candidate with its score, best first in [`Ranking::ranked`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ranked {
    /// The candidate.
    pub node: NodeId,
    /// Where its answer came from.
    pub addr: Addr,
    /// The load it reported.
    pub state: NodeState,
    /// The measured round trip.
    pub rtt: Duration,
    /// The normalised metrics.
    pub parts: ScoreParts,
    /// `parts.score(weights)`.
    pub score: u64,
}

/// Ranks the permitting answers by weighted score, best first.
///
/// Denials are ignored. Ties on score go to fewer `running_jobs`, then to the lowest
/// [`NodeId`] (remote-process paper §3.3.6). See [`ScoreParts`] for the normalisation.
pub fn rank(answers: &[Answer], weights: &Weights) -> Vec<Ranked> {
    let permits = || answers.iter().filter(|a| a.verdict == Verdict::Permit);
    let floor = |d: Duration| d.max(RTT_FLOOR).as_nanos();
    let max_mem = permits().map(|a| a.state.free_mem).max().unwrap_or(0);
    let max_speed = permits().map(|a| a.state.cpu_speed).max().unwrap_or(0);
    let min_rtt = permits().map(|a| floor(a.rtt)).min().unwrap_or(1);
    // `num <= den` for every caller, so the ratio is in 0..=1000; 0 when den is 0.
    let ratio = |num: u128, den: u128| -> u16 {
        (num * u128::from(PART_MAX))
            .checked_div(den)
            .map_or(0, |r| u16::try_from(r).unwrap_or(PART_MAX))
    };
    let mut out: Vec<Ranked> = permits()
        .map(|a| {
            let parts = ScoreParts {
                cpu_load: PART_MAX - a.state.cpu_load.min(MAX_CPU_LOAD),
                free_mem: ratio(a.state.free_mem.into(), max_mem.into()),
                cpu_speed: ratio(a.state.cpu_speed.into(), max_speed.into()),
                network: ratio(min_rtt, floor(a.rtt)),
            };
            Ranked {
                node: a.node,
                addr: a.addr,
                state: a.state,
                rtt: a.rtt,
                parts,
                score: parts.score(weights),
            }
        })
        .collect();
    out.sort_by(better);
    out
}

/// Orders better candidates first: higher score, then fewer running jobs, then lower id.
fn better(a: &Ranked, b: &Ranked) -> Ordering {
    b.score
        .cmp(&a.score)
        .then(a.state.running_jobs.cmp(&b.state.running_jobs))
        .then(a.node.cmp(&b.node))
}

/// Identifies one placement at its requester; returned by
/// [`Member::start_placement`](crate::Member::start_placement).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PlacementId(pub u32);

impl fmt::Display for PlacementId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// A candidate that denied, with its reason and load.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Denial {
    /// The candidate.
    pub node: NodeId,
    /// Why it refused.
    pub reason: DenyReason,
    /// The load it reported.
    pub state: NodeState,
}

/// The outcome of a placement: every asked candidate appears in exactly one of
/// `ranked`, `denied` and `unanswered`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ranking {
    /// Which placement.
    pub id: PlacementId,
    /// The job that was asked for.
    pub job: JobSpec,
    /// The weights used for `ranked[..].score`.
    pub weights: Weights,
    /// Permitting candidates, best first (see [`rank`]).
    pub ranked: Vec<Ranked>,
    /// Candidates that denied, in node id order.
    pub denied: Vec<Denial>,
    /// Candidates that did not answer before the timeout, in node id order.
    pub unanswered: Vec<NodeId>,
}

impl Ranking {
    /// The best permitting candidate, if any.
    pub fn best(&self) -> Option<&Ranked> {
        self.ranked.first()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    fn st(cpu_load: u16, free_mib: u64, cpu_speed: u32, running_jobs: u16) -> NodeState {
        NodeState {
            cpu_load,
            free_mem: free_mib * MIB,
            cpu_speed,
            running_jobs,
        }
    }

    #[test]
    fn candidate_rule() {
        let idle = st(0, 512, 1000, 0);
        let busy = st(900, 512, 1000, 1);
        let job = |mode| JobSpec {
            program_size: MIB,
            memory: 64 * MIB,
            mode,
        };
        let big = JobSpec {
            program_size: MIB,
            memory: 600 * MIB,
            mode: Mode::Balance,
        };
        use DenyReason::*;
        let cases: &[(Role, bool, bool, NodeState, JobSpec, Verdict)] = &[
            (
                Role::Node,
                false,
                true,
                idle,
                job(Mode::Exclusive),
                Verdict::Permit,
            ),
            (
                Role::Node,
                false,
                true,
                busy,
                job(Mode::Exclusive),
                Verdict::Deny(Busy),
            ),
            (
                Role::Node,
                false,
                true,
                busy,
                job(Mode::Balance),
                Verdict::Permit,
            ),
            (
                Role::Node,
                false,
                true,
                idle,
                big,
                Verdict::Deny(NotEnoughMemory),
            ),
            (
                Role::Host,
                false,
                true,
                idle,
                job(Mode::Balance),
                Verdict::Deny(Host),
            ),
            (
                Role::Node,
                true,
                true,
                idle,
                job(Mode::Balance),
                Verdict::Deny(ShuttingDown),
            ),
            (
                Role::Node,
                false,
                false,
                idle,
                job(Mode::Balance),
                Verdict::Deny(NotAccepting),
            ),
        ];
        for (i, (role, leaving, acc, state, job, want)) in cases.iter().enumerate() {
            assert_eq!(decide(*role, *leaving, *acc, state, job), *want, "case {i}");
        }
    }

    fn ans(id: u64, state: NodeState, rtt_us: u64) -> Answer {
        Answer {
            node: NodeId::from_u64(id),
            addr: Addr::default(),
            verdict: Verdict::Permit,
            state,
            rtt: Duration::from_micros(rtt_us),
        }
    }

    #[test]
    fn parts_are_normalised() {
        let r = rank(
            &[
                ans(1, st(250, 100, 500, 0), 200),
                ans(2, st(1000, 400, 2000, 0), 100),
            ],
            &Weights::default(),
        );
        let p1 = r.iter().find(|r| r.node.as_u64() == 1).unwrap().parts;
        assert_eq!(
            p1,
            ScoreParts {
                cpu_load: 750,
                free_mem: 250,
                cpu_speed: 250,
                network: 500
            }
        );
        let p2 = r.iter().find(|r| r.node.as_u64() == 2).unwrap().parts;
        assert_eq!(
            p2,
            ScoreParts {
                cpu_load: 0,
                free_mem: 1000,
                cpu_speed: 1000,
                network: 1000
            }
        );
        // 4*750 + 2*250 + 3*250 + 500 = 4750 ; 0 + 2000 + 3000 + 1000 = 6000
        assert_eq!(r[0].node.as_u64(), 2);
        assert_eq!((r[0].score, r[1].score), (6000, 4750));
    }

    #[test]
    fn ties_and_denials() {
        let mut a = [
            ans(9, st(0, 100, 100, 1), 10),
            ans(7, st(0, 100, 100, 0), 10),
            ans(3, st(0, 100, 100, 1), 10),
            ans(1, st(0, 100, 100, 0), 10),
        ];
        a[3].verdict = Verdict::Deny(DenyReason::Busy);
        let r = rank(&a, &Weights::default());
        let order: Vec<u64> = r.iter().map(|r| r.node.as_u64()).collect();
        assert_eq!(order, [7, 3, 9]);
    }

    #[test]
    fn zero_maxima_and_zero_rtt() {
        let r = rank(
            &[ans(1, st(0, 0, 0, 0), 0), ans(2, st(0, 0, 0, 0), 0)],
            &Weights::default(),
        );
        assert_eq!(r[0].parts.free_mem, 0);
        assert_eq!(r[0].parts.cpu_speed, 0);
        assert_eq!(r[0].parts.network, 1000);
        assert!(rank(&[], &Weights::default()).is_empty());
    }
}
