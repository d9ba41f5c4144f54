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
    /// denies with [`DenyReason::Busy`], and the job owns every CPU of the node it runs
    /// on (the node reports no free CPU meanwhile, [`NodeState::free_cpus`]). The SiON
    /// paper's rule (§3.2.3: the application runs as a single task to completion).
    #[default]
    Exclusive,
    /// Load balancing: a node with N CPUs takes up to N one-CPU jobs at once, one per
    /// free CPU; a node without a free CPU counts as loaded but still permits a
    /// one-CPU job, which waits there behind the running ones if the requester takes
    /// it (the score puts loaded nodes behind nodes with free CPUs). A job that asks
    /// for more CPUs ([`JobSpec::cpus`] > 1) needs that many free ones
    /// ([`DenyReason::NoFreeCpus`]).
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
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct JobSpec {
    /// Size of the program file to upload, in bytes.
    pub program_size: u64,
    /// Memory the job wants besides its program image, in bytes (heap, stack, data).
    pub memory: u64,
    /// Exclusive or balance.
    pub mode: Mode,
    /// Processors the job asks for (its threads that compute at once), 1 by
    /// default; 0 is read as 1 ([`JobSpec::cpus_wanted`]). A node with fewer
    /// processors denies [`DenyReason::TooFewCpus`] in both modes; in
    /// [`Mode::Balance`] a job asking for more than one also needs that many
    /// free ([`DenyReason::NoFreeCpus`]). A JSON form without it (an older
    /// `hostd`'s) means 1.
    #[serde(default = "one_cpu")]
    pub cpus: u8,
}

fn one_cpu() -> u8 {
    1
}

impl Default for JobSpec {
    /// No program, no memory, [`Mode::Exclusive`], one CPU.
    fn default() -> JobSpec {
        JobSpec {
            program_size: 0,
            memory: 0,
            mode: Mode::default(),
            cpus: 1,
        }
    }
}

impl JobSpec {
    /// Bytes the job needs on the node: `program_size + memory` (saturating).
    pub const fn needed_memory(&self) -> u64 {
        self.program_size.saturating_add(self.memory)
    }

    /// Processors the job needs: [`cpus`](JobSpec::cpus), at least 1.
    pub const fn cpus_wanted(&self) -> u8 {
        if self.cpus == 0 { 1 } else { self.cpus }
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
    /// The node has fewer processors than the job asks for
    /// ([`JobSpec::cpus`] above [`NodeState::cpus`]): it never could run it.
    TooFewCpus,
    /// Balance mode: the job asks for more than one CPU and fewer than that are
    /// free on the node now ([`NodeState::free_cpus`]; the others run jobs).
    NoFreeCpus,
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
            DenyReason::TooFewCpus => "fewer CPUs than the job asks for",
            DenyReason::NoFreeCpus => "fewer free CPUs than the job asks for (others run jobs)",
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
/// both modes: a waiting job must fit beside the running one); a job asking for
/// more CPUs than the node has ([`JobSpec::cpus_wanted`] above
/// [`NodeState::cpu_count`]) is denied ([`DenyReason::TooFewCpus`], both modes);
/// in [`Mode::Exclusive`] a node with `running_jobs > 0` denies
/// ([`DenyReason::Busy`]; an idle node gives the job all its CPUs); in
/// [`Mode::Balance`] a job asking for more than one CPU is denied by a node with
/// fewer free CPUs than that ([`DenyReason::NoFreeCpus`]), while a one-CPU job is
/// permitted even by a node without a free CPU (it waits there; one-CPU nodes
/// take balance jobs as they did before nodes counted CPUs).
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
    } else if job.cpus_wanted() > state.cpu_count() {
        Some(DenyReason::TooFewCpus)
    } else if job.mode == Mode::Exclusive && state.running_jobs > 0 {
        Some(DenyReason::Busy)
    } else if job.mode == Mode::Balance
        && job.cpus_wanted() > 1
        && job.cpus_wanted() > state.free_cpus
    {
        Some(DenyReason::NoFreeCpus)
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
/// - `cpu_load = (1000 - load) * free / max(free)`: the idle permille, scaled by the
///   node's free CPUs ([`NodeState::free_cpus`], at most [`NodeState::cpu_count`])
///   relative to the candidate with the most, so that a node with more free CPUs
///   scores higher and a node without a free CPU (loaded) scores 0; when no
///   candidate has a free CPU it is the idle permille alone;
/// - `free_mem = 1000 * free_mem / max(free_mem)`;
/// - `cpu_speed = 1000 * cpu_speed / max(cpu_speed)`;
/// - `network = 1000 * min(rtt) / rtt`, round trips floored at [`RTT_FLOOR`].
///
/// Maxima and minima run over the permitting candidates; a part whose maximum is 0 is
/// 0 for everyone. Divisions round down.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ScoreParts {
    /// Idle CPU scaled by free CPUs, permille.
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
/// Denials are ignored. Ties on score go to more free CPUs, then to fewer
/// `running_jobs`, then to the lowest [`NodeId`] (remote-process paper §3.3.6). See
/// [`ScoreParts`] for the normalisation.
pub fn rank(answers: &[Answer], weights: &Weights) -> Vec<Ranked> {
    let permits = || answers.iter().filter(|a| a.verdict == Verdict::Permit);
    let floor = |d: Duration| d.max(RTT_FLOOR).as_nanos();
    let max_free = permits().map(|a| free_cpus(&a.state)).max().unwrap_or(0);
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
            let idle = PART_MAX - a.state.cpu_load.min(MAX_CPU_LOAD);
            let cpu_load = if max_free == 0 {
                idle
            } else {
                // free <= max_free, so the result is at most `idle`.
                (u32::from(idle) * u32::from(free_cpus(&a.state)) / u32::from(max_free)) as u16
            };
            let parts = ScoreParts {
                cpu_load,
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

/// A node's free CPUs for ranking: [`NodeState::free_cpus`], at most its
/// [`NodeState::cpu_count`].
fn free_cpus(s: &NodeState) -> u8 {
    s.free_cpus.min(s.cpu_count())
}

/// Orders better candidates first: higher score, then more free CPUs, then fewer
/// running jobs, then lower id.
fn better(a: &Ranked, b: &Ranked) -> Ordering {
    b.score
        .cmp(&a.score)
        .then(free_cpus(&b.state).cmp(&free_cpus(&a.state)))
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

    /// A one-CPU node's state.
    fn st(cpu_load: u16, free_mib: u64, cpu_speed: u32, running_jobs: u16) -> NodeState {
        NodeState {
            cpu_load,
            free_mem: free_mib * MIB,
            cpu_speed,
            running_jobs,
            cpus: 1,
            free_cpus: NodeState::free_cpus_for(1, running_jobs),
        }
    }

    /// A node with `cpus` CPUs running `running_jobs` one-CPU jobs (512 MiB free,
    /// speed 1000, load 250 per running job up to 1000 over all CPUs).
    fn smp(cpus: u8, running_jobs: u16) -> NodeState {
        let busy = u32::from(running_jobs.min(u16::from(cpus)));
        NodeState {
            cpu_load: (busy * 1000 / u32::from(cpus.max(1))) as u16,
            free_mem: 512 * MIB,
            cpu_speed: 1000,
            running_jobs,
            cpus,
            free_cpus: NodeState::free_cpus_for(cpus, running_jobs),
        }
    }

    fn job(mode: Mode, cpus: u8) -> JobSpec {
        JobSpec {
            program_size: MIB,
            memory: 64 * MIB,
            mode,
            cpus,
        }
    }

    fn verdict(state: NodeState, job: JobSpec) -> Verdict {
        decide(Role::Node, false, true, &state, &job)
    }

    #[test]
    fn free_cpus_count_one_cpu_per_job() {
        assert_eq!(NodeState::free_cpus_for(4, 0), 4);
        assert_eq!(NodeState::free_cpus_for(4, 3), 1);
        assert_eq!(NodeState::free_cpus_for(4, 4), 0);
        assert_eq!(NodeState::free_cpus_for(4, 9), 0);
        assert_eq!(NodeState::free_cpus_for(255, 300), 0);
        assert_eq!(NodeState::free_cpus_for(1, 0), 1);
        assert_eq!(NodeState::default().cpu_count(), 1);
        assert_eq!(smp(8, 0).cpu_count(), 8);
        let zero = JobSpec {
            cpus: 0,
            ..JobSpec::default()
        };
        assert_eq!(zero.cpus_wanted(), 1);
        assert_eq!(JobSpec::default().cpus, 1);
    }

    #[test]
    fn balance_node_takes_one_job_per_cpu_before_it_is_loaded() {
        // A 2-CPU node: two one-CPU balance jobs find a free CPU each; a third
        // is still permitted (it waits there) but the node now has none free.
        assert_eq!(verdict(smp(2, 0), job(Mode::Balance, 1)), Verdict::Permit);
        assert_eq!(verdict(smp(2, 1), job(Mode::Balance, 1)), Verdict::Permit);
        assert_eq!(smp(2, 1).free_cpus, 1);
        assert_eq!(smp(2, 2).free_cpus, 0);
        assert_eq!(verdict(smp(2, 2), job(Mode::Balance, 1)), Verdict::Permit);
        // Ranked: the node with a free CPU comes before the loaded one, however
        // the ids fall.
        let r = rank(
            &[ans(1, smp(2, 2), 10), ans(2, smp(2, 1), 10)],
            &Weights::default(),
        );
        assert_eq!(r[0].node.as_u64(), 2);
        assert_eq!(r[1].parts.cpu_load, 0, "a loaded node's CPU part");
        assert!(r[0].score > r[1].score);
    }

    #[test]
    fn score_prefers_more_free_cpus() {
        // Same speed, memory and round trip: an idle 4-CPU node beats a 4-CPU
        // node with one job (3 free), which beats an idle 2-CPU node and a
        // one-CPU node.
        let r = rank(
            &[
                ans(1, smp(1, 0), 10),
                ans(2, smp(2, 0), 10),
                ans(3, smp(4, 1), 10),
                ans(4, smp(4, 0), 10),
            ],
            &Weights::default(),
        );
        let order: Vec<u64> = r.iter().map(|r| r.node.as_u64()).collect();
        assert_eq!(order, [4, 3, 2, 1]);
        let cpu: Vec<u16> = r.iter().map(|r| r.parts.cpu_load).collect();
        // idle 1000 * 4/4; (1000 - 250) * 3/4; 1000 * 2/4; 1000 * 1/4.
        assert_eq!(cpu, [1000, 562, 500, 250]);
        // Equal scores: more free CPUs first, before fewer running jobs.
        let mut a = smp(4, 2);
        a.cpu_load = 0;
        a.free_cpus = 2;
        let mut b = smp(2, 0);
        b.cpus = 4;
        b.free_cpus = 1;
        b.cpu_load = 0;
        let w = Weights {
            cpu_load: 0,
            ..Weights::default()
        };
        let r = rank(&[ans(1, b, 10), ans(2, a, 10)], &w);
        assert_eq!(r[0].score, r[1].score);
        assert_eq!(
            r[0].node.as_u64(),
            2,
            "2 free CPUs beat 1, though it runs 2 jobs"
        );
    }

    #[test]
    fn exclusive_job_owns_the_whole_node() {
        // An idle node of any size permits; with one job running it is busy,
        // even with CPUs to spare.
        assert_eq!(verdict(smp(4, 0), job(Mode::Exclusive, 1)), Verdict::Permit);
        assert_eq!(verdict(smp(4, 0), job(Mode::Exclusive, 4)), Verdict::Permit);
        assert_eq!(
            verdict(smp(4, 1), job(Mode::Exclusive, 1)),
            Verdict::Deny(DenyReason::Busy)
        );
        // A node that runs an exclusive job reports no free CPU (the Member sees
        // to it), so a balance job asking for two is denied there.
        let mut owned = smp(4, 1);
        owned.free_cpus = 0;
        assert_eq!(
            verdict(owned, job(Mode::Balance, 2)),
            Verdict::Deny(DenyReason::NoFreeCpus)
        );
    }

    #[test]
    fn a_job_asking_for_cpus_needs_them() {
        use DenyReason::*;
        // Fewer CPUs in all than asked: denied in both modes, whatever runs.
        assert_eq!(
            verdict(smp(2, 0), job(Mode::Exclusive, 3)),
            Verdict::Deny(TooFewCpus)
        );
        assert_eq!(
            verdict(smp(2, 0), job(Mode::Balance, 3)),
            Verdict::Deny(TooFewCpus)
        );
        assert_eq!(
            verdict(
                NodeState {
                    free_mem: 512 * MIB,
                    ..NodeState::default()
                },
                job(Mode::Balance, 2)
            ),
            Verdict::Deny(TooFewCpus),
            "a state without a CPU count is one CPU"
        );
        // Enough CPUs but too few free (balance): denied until jobs end.
        assert_eq!(
            verdict(smp(4, 3), job(Mode::Balance, 2)),
            Verdict::Deny(NoFreeCpus)
        );
        assert_eq!(verdict(smp(4, 2), job(Mode::Balance, 2)), Verdict::Permit);
        assert_eq!(verdict(smp(4, 0), job(Mode::Balance, 4)), Verdict::Permit);
        // Memory is checked first, then the CPUs.
        let big = JobSpec {
            memory: 600 * MIB,
            ..job(Mode::Balance, 9)
        };
        assert_eq!(verdict(smp(4, 0), big), Verdict::Deny(NotEnoughMemory));
        // The requester never ranks a denial.
        let mut answers = [ans(1, smp(4, 3), 10), ans(2, smp(2, 0), 10)];
        answers[0].verdict = verdict(answers[0].state, job(Mode::Balance, 2));
        answers[1].verdict = verdict(answers[1].state, job(Mode::Balance, 2));
        let r = rank(&answers, &Weights::default());
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].node.as_u64(), 2);
    }

    #[test]
    fn deny_reasons_say_what_is_missing() {
        assert_eq!(
            alloc::format!("{}", DenyReason::TooFewCpus),
            "fewer CPUs than the job asks for"
        );
        assert!(alloc::format!("{}", DenyReason::NoFreeCpus).contains("free CPUs"));
    }

    #[test]
    fn candidate_rule() {
        let idle = st(0, 512, 1000, 0);
        let busy = st(900, 512, 1000, 1);
        let job = |mode| job(mode, 1);
        let big = JobSpec {
            program_size: MIB,
            memory: 600 * MIB,
            mode: Mode::Balance,
            cpus: 1,
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
